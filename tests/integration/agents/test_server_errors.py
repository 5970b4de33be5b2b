"""An ``opsflow agent`` behind a reverse proxy that misbehaves the way a load balancer in
front of sick replicas does: 5xx answers (the database down: 500; no healthy upstream: 502,
503, 504) and connection resets are waited out like an unreachable server (spooled, retried,
delivered once), and a claim whose answer is lost on the wire is not left to expire."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import RunningServer, run_server, warm_launch

from .conftest import Agents, Api, assert_reported_once, server_env, spooled
from .proxy import Action, Answer, Forward, Lose, Proxy, Reset, running_proxy

pytestmark = pytest.mark.timeout(120)

# Longer than any outage below: what happens must come from the agent riding it out, not from
# a lease running out and the step being retried.
LEASE = 10.0
LINES = 30
TALKER = f"""
id: talker
steps:
  - id: talk
    type: script
    shell: sh
    run: |
      i=1
      while [ $i -le {LINES} ]; do echo line-$i; i=$((i+1)); sleep 0.1; done
      echo '{{"said": {LINES}}}' > "$OPSFLOW_OUTPUT"
"""
QUICK = """
id: quick
steps:
  - {id: once, type: script, shell: sh, run: "echo ran-once"}
"""


@pytest.fixture
def long_lease_server(agent_db: str, tmp_path: Path) -> Iterator[RunningServer]:
    data = tmp_path / "server"
    data.mkdir()
    env = {**server_env(), "OPSFLOW_LEASE_SECONDS": str(LEASE)}
    with run_server(agent_db, data, "--no-local-agent", launch=warm_launch, env=env) as running:
        yield running


@pytest.fixture
def proxy(long_lease_server: RunningServer) -> Iterator[Proxy]:
    with running_proxy(long_lease_server.url) as running:
        yield running


@pytest.fixture
def api(long_lease_server: RunningServer) -> Iterator[Api]:
    client = Api(long_lease_server.url, long_lease_server.token)
    yield client
    client.client.close()


@pytest.fixture
def agents(long_lease_server: RunningServer, tmp_path: Path) -> Iterator[Agents]:
    running = Agents(long_lease_server, tmp_path / "agents")
    yield running
    running.close()


def test_5xx_answers_and_resets_are_waited_out_and_the_report_and_log_arrive_once(
    proxy: Proxy, api: Api, agents: Agents
) -> None:
    agents.start("a", "--concurrency", "1", url=proxy.url)
    agent_id = agents.agent_id("a")
    api.publish("talker", TALKER)
    execution_id = api.run("talker")
    api.wait_for("the job prints", lambda: "line-3" in api.log_texts(execution_id), timeout=60)

    # The outage: a rotation of what a balancer in front of sick replicas answers (502, 503,
    # 504), what a replica whose PostgreSQL is down answers (500), and connection resets.
    sick: Iterator[Action] = itertools.cycle(
        [Answer(503), Answer(500), Reset(), Answer(502), Answer(504)]
    )
    lock = threading.Lock()

    def outage(_method: str, path: str) -> Action:
        if not path.startswith("/api/v1/agent/"):
            return Forward()
        with lock:
            return next(sick)

    proxy.policy = outage
    work = agents.root / "a"
    deadline = time.monotonic() + 60
    # The job runs to its end meanwhile; its later lines and its report wait in the spool.
    while '"kind": "report"' not in spooled(work):
        assert time.monotonic() < deadline, agents.log("a")
        time.sleep(0.1)
    assert proxy.count("/logs", "Answer") + proxy.count("/logs", "Reset") >= 1, proxy.seen
    assert api.execution(execution_id)["status"] == "running"

    # The server comes back, but its database is not quite: the report meets 500 three times.
    reports = itertools.count()

    def recovering(_method: str, path: str) -> Action:
        if path.endswith("/agent/report") and next(reports) < 3:
            return Answer(500)
        return Forward()

    proxy.policy = recovering
    api.wait_for(
        "the run completes once the server answers again",
        lambda: api.execution(execution_id)["status"] == "completed",
        timeout=60,
    )
    assert_reported_once(api, agents, execution_id, agent_id, work, LINES)
    log = agents.log("a")
    assert "the server is unreachable" in log and "the server answers again" in log, log
    assert "Traceback" not in log, log
    assert proxy.count("/agent/report", "Answer") == 3, proxy.seen


def test_a_claim_whose_answer_is_lost_is_answered_again_and_the_job_runs_at_once(
    proxy: Proxy, api: Api, agents: Agents
) -> None:
    """The server leases the job, its answer never reaches the agent (a replica dying after
    its commit, a cut connection): the agent's next claim must get that job, under the same
    lease, instead of the job waiting out its lease as 'agent lost'."""
    api.publish("quick", QUICK)
    execution_id = api.run("quick")
    lost = threading.Event()

    def lose_first_claim(_method: str, path: str) -> Action:
        if path.endswith("/agent/claim") and not lost.is_set():
            lost.set()
            return Lose()
        return Forward()

    proxy.policy = lose_first_claim
    queued = time.monotonic()
    # Free slots left after the claim: the server notes that this claim drained the queue,
    # and the claim sent again must not wait for a new job as a new claim would.
    agents.start("a", "--concurrency", "4", url=proxy.url)
    agent_id = agents.agent_id("a")
    api.wait_for(
        "the run completes",
        lambda: api.execution(execution_id)["status"] in ("completed", "failed"),
        timeout=60,
    )
    took = time.monotonic() - queued
    assert lost.is_set() and proxy.count("/agent/claim", "Lose") == 1
    detail = api.execution(execution_id)
    (step,) = detail["steps"]
    # One attempt, run by the agent whose claim answer was lost, well before its lease ran out.
    assert [(j["attempt"], j["status"], j["agent_id"]) for j in step["jobs"]] == [
        (1, "completed", agent_id)
    ], (step, agents.log("a"))
    # Started by the lost claim itself (`ClaimRequest.start`), and answered again as such.
    assert step["jobs"][0]["started_at"] == step["jobs"][0]["dispatched_at"], step
    assert proxy.count("/agent/start", "Forward") == 0, proxy.seen
    assert took < LEASE, took
    assert "ran-once" in api.log_texts(execution_id)


RETRIED = """
id: retried
steps:
  - {id: work, type: script, shell: sh, retries: 1, run: "echo working"%s}
"""


@pytest.mark.parametrize("route", ["report", "start"])
def test_a_message_answered_5xx_for_ever_is_given_up_and_the_step_retried_as_agent_lost(
    proxy: Proxy, api: Api, agents: Agents, route: str
) -> None:
    """The server fails one job's report (or start) for ever while it takes heartbeats: the
    agent retries it for ``--give-up-after`` seconds, then gives the job up — says so naming
    the job, attempt and last error, stops renewing its lease — so the attempt ends as
    'agent lost' and the step is retried (on the same agent, which goes on claiming). A job
    without a timeout is started by its claim: the start is the one of a job with a timeout."""
    failing = threading.Event()
    failing.set()

    def sick(_method: str, path: str) -> Action:
        if failing.is_set() and path.endswith(f"/agent/{route}"):
            return Answer(500)
        return Forward()

    proxy.policy = sick
    agents.start("a", "--concurrency", "1", "--give-up-after", "3", url=proxy.url)
    agent_id = agents.agent_id("a")
    api.publish("retried", RETRIED % (", timeout: 5m" if route == "start" else ""))
    execution_id = api.run("retried")
    api.wait_for("the agent gives the job up", lambda: "gave up job" in agents.log("a"), timeout=60)
    given_up = time.monotonic()
    failing.clear()
    (line,) = [ln for ln in agents.log("a").splitlines() if "gave up job" in ln]
    (first,) = api.execution(execution_id)["steps"][0]["jobs"][:1]
    assert f"gave up job {first['id']} (attempt 1)" in line, line
    assert "last error:" in line and "answered 500" in line, line
    assert proxy.count(f"/agent/{route}", "Answer") >= 2, proxy.seen  # retried, then given up

    api.wait_for(
        "the run completes on the retry",
        lambda: api.execution(execution_id)["status"] in ("completed", "failed"),
        timeout=60,
    )
    (step,) = api.execution(execution_id)["steps"]
    got = [(j["attempt"], j["status"], j["agent_id"]) for j in step["jobs"]]
    assert got == [(1, "failed", agent_id), (2, "completed", agent_id)], (step, agents.log("a"))
    assert step["jobs"][0]["error"].startswith("agent lost"), step["jobs"][0]
    # The lease ran out unrenewed: the retry waited for it, no longer.
    assert time.monotonic() - given_up < LEASE + 20
    # Nothing of the given-up attempt is sent later, and the agent goes on taking work.
    api.publish("quick", QUICK)
    quick = api.run("quick")
    api.wait_for(
        "another run completes", lambda: api.execution(quick)["status"] == "completed", timeout=60
    )
    assert not spooled(agents.root / "a")
    assert api.execution(execution_id)["steps"][0]["jobs"][0]["status"] == "failed"
    assert "Traceback" not in agents.log("a"), agents.log("a")
