"""An ``opsflow agent`` rides out what goes wrong between it and its server: the server down
for 20 s (killed, then restarted on its port and database) while a job runs, the agent itself
restarted meanwhile; and an agent stopped past its lease whose late reports must change
nothing."""

from __future__ import annotations

import os
import signal
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BACKENDS
from tests.servers import RunningServer, free_port, run_server, warm_launch

from .conftest import Agents, Api, assert_reported_once, job_lines, server_env, spooled

pytestmark = pytest.mark.timeout(180)

LINES = 60
CHATTY = f"""
id: chatty
steps:
  - id: talk
    type: script
    shell: sh
    run: |
      i=1
      while [ $i -le {LINES} ]; do echo line-$i; i=$((i+1)); sleep 0.1; done
      echo '{{"said": {LINES}}}' > "$OPSFLOW_OUTPUT"
"""
OUTAGE = 20.0


# PostgreSQL only, as issue 17 asks (real processes on PostgreSQL): what the 20 s outage tests is
# the agent's spool and its redelivery to a restarted server, the same on either database
# (a server killed on SQLite is the crash tests' subject), and it costs 25 s a run.
@pytest.mark.parametrize("agent_db", [b for b in BACKENDS if b == "postgresql"], indirect=True)
def test_a_job_outlives_a_20s_server_outage_and_an_agent_restart_and_reports_once(
    agent_db: str, tmp_path: Path
) -> None:
    port = free_port()
    data = tmp_path / "server"
    data.mkdir()
    with ExitStack() as stack:
        first = stack.enter_context(
            run_server(
                agent_db, data, "--no-local-agent", launch=warm_launch, env=server_env(), port=port
            )
        )
        agents = Agents(first, tmp_path / "agents")
        stack.callback(agents.close)
        api = Api(first.url, first.token)
        stack.callback(api.client.close)
        agents.start("a", "--concurrency", "1")
        agent_id = agents.agent_id("a")
        api.publish("chatty", CHATTY)
        execution_id = api.run("chatty")
        api.wait_for("the job prints", lambda: "line-5" in api.log_texts(execution_id), timeout=60)

        os.kill(first.pid, signal.SIGKILL)
        down_at = time.monotonic()
        work = agents.root / "a"
        # The job runs on while the server is gone; its lines and then its report are spooled.
        deadline = down_at + 60
        while '"kind": "report"' not in spooled(work):
            assert time.monotonic() < deadline, agents.log("a")
            time.sleep(0.1)
        assert "jobs go on, what they report is kept in" in agents.log("a")
        # The agent dies too and comes back while the server is still down: its new process
        # must deliver what the old one spooled.
        agents.processes["a"].kill()
        agents.processes["a"].wait()
        agents.start("a", "--concurrency", "1")
        time.sleep(max(0.0, down_at + OUTAGE - time.monotonic()))  # the outage lasts 20 s
        assert "holds messages of 1 job from before this start" in agents.log("a")

        second = stack.enter_context(
            run_server(
                agent_db, data, "--no-local-agent", launch=warm_launch, env=server_env(), port=port
            )
        )
        assert second.url == first.url
        api.wait_for(
            "the run completes once the server is back",
            lambda: api.execution(execution_id)["status"] == "completed",
            timeout=60,
        )
        assert_reported_once(api, agents, execution_id, agent_id, work, LINES)
        assert "the server answers again" in agents.log("a")


STALE_CYCLES = 5
STALE_PER_CYCLE = 10


def _snapshot(api: Api, execution_ids: list[str]) -> dict[str, Any]:
    """What a user sees of each run: its status, every attempt, and how many log lines."""
    seen: dict[str, Any] = {}
    for execution_id in execution_ids:
        detail = api.execution(execution_id)
        attempts = [
            (j["id"], j["attempt"], j["status"], j["agent_id"], j["error"])
            for step in detail["steps"]
            for j in step["jobs"]
        ]
        seen[execution_id] = (detail["status"], attempts, len(job_lines(api, execution_id)))
    return seen


def test_reports_of_an_agent_stopped_past_its_leases_are_refused_and_change_nothing(
    server: RunningServer, api: Api, agents: Agents, tmp_path: Path
) -> None:
    """50 attempts, 10 at a time: each is lost while its agent is stopped (SIGSTOP), retried
    and finished by another agent; then the stopped agent resumes and reports them late."""
    marks = tmp_path / "marks"
    marks.mkdir()
    api.publish(
        "stalled",
        f"""
id: stalled
steps:
  - id: work
    type: script
    shell: sh
    retries: 3
    run: |
      touch {marks}/$OPSFLOW_EXECUTION_ID-$OPSFLOW_ATTEMPT
      echo attempt-$OPSFLOW_ATTEMPT
      if [ "$OPSFLOW_ATTEMPT" = 1 ]; then sleep 4; fi
""",
    )
    victim = agents.start("victim", "--concurrency", str(STALE_PER_CYCLE))
    victim_id = agents.agent_id("victim")
    lost: set[str] = set()
    for cycle in range(STALE_CYCLES):
        runs = [api.run("stalled") for _ in range(STALE_PER_CYCLE)]

        def all_started(runs: list[str] = runs) -> bool:
            return all((marks / f"{run}-1").exists() for run in runs)

        api.wait_for(f"cycle {cycle}: the first agent runs every job", all_started, timeout=60)
        victim.send_signal(signal.SIGSTOP)
        # Its leases (2 s) run out; another agent runs the retries to their end.
        rescuer = agents.start("rescuer", "--concurrency", str(STALE_PER_CYCLE))
        rescuer_id = agents.agent_id("rescuer")

        def all_completed(runs: list[str] = runs) -> bool:
            return all(api.execution(run)["status"] == "completed" for run in runs)

        api.wait_for(f"cycle {cycle}: the retries complete", all_completed, timeout=60)
        rescuer.terminate()
        assert rescuer.wait(timeout=30) == 0
        before = _snapshot(api, runs)
        for status, attempts, _ in before.values():
            assert status == "completed"
            # The stopped agent's attempt was lost; the rescuer's last one completed (on a
            # loaded machine one of its own may have missed its 2 s lease in between).
            assert (attempts[0][1], attempts[0][2], attempts[0][3]) == (1, "failed", victim_id)
            assert (attempts[-1][2], attempts[-1][3]) == ("completed", rescuer_id), attempts
            assert all(a[2] == "failed" and "agent lost" in a[4] for a in attempts[:-1]), attempts
        lost_now = {attempts[0][0] for _, attempts, _ in before.values()}
        lost |= lost_now

        victim.send_signal(signal.SIGCONT)

        def refused(lost_now: set[str] = lost_now) -> bool:
            # Refused directly, or from the spool: a request cut by the stop (its connection
            # closed meanwhile) counts as the server unreachable, and what follows is spooled.
            lines = agents.log("victim").splitlines()
            return all(any(f"job {job} refused" in line for line in lines) for job in lost_now)

        api.wait_for(f"cycle {cycle}: every late report is refused", refused, timeout=60)
        assert _snapshot(api, runs) == before
    assert len(lost) == STALE_CYCLES * STALE_PER_CYCLE


HANDED = """
id: handed
steps:
  - id: work
    type: script
    shell: sh
    run: |
      if [ -e "{mark}" ]; then echo second-run; exit 0; fi
      touch "{mark}"; echo first-run; sleep 60
"""


def test_a_job_still_running_after_the_drain_grace_is_handed_back_and_rerun_elsewhere(
    server: RunningServer, api: Api, agents: Agents, tmp_path: Path
) -> None:
    mark = tmp_path / "first-run"
    api.publish("handed", HANDED.format(mark=mark))
    leaving = agents.start("leaving", "--grace", "1")
    execution_id = api.run("handed")
    api.wait_for("the job runs", lambda: "first-run" in api.log_texts(execution_id), timeout=60)
    started = time.monotonic()
    leaving.terminate()
    assert leaving.wait(timeout=30) == 0, agents.log("leaving")
    assert time.monotonic() - started < 20, agents.log("leaving")
    assert "handing it back" in agents.log("leaving")
    agents.start("staying")
    staying_id = agents.agent_id("staying")
    api.wait_for(
        "another agent reruns it",
        lambda: api.execution(execution_id)["status"] == "completed",
        timeout=60,
    )
    (step,) = api.execution(execution_id)["steps"]
    # Handed back, not failed: one attempt, run to its end by the agent that stayed.
    assert [(j["attempt"], j["status"], j["agent_id"]) for j in step["jobs"]] == [
        (1, "completed", staying_id)
    ], step
    texts = api.log_texts(execution_id)
    assert "[opsflow] the agent is stopping: job handed back" in texts, texts
    assert "second-run" in texts
