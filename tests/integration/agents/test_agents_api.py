"""Agents in the API: presence from the database, job counts, drain."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

import opsflow
from tests.conftest import BACKENDS
from tests.servers import RunningServer, clean_env, opsflow_executable, run_server, warm_launch

from .conftest import LEASE, Agents, Api, server_env

QUICK = """
id: quick
steps:
  - {id: work, type: script, shell: sh, run: "echo hi"}
"""


def _agents(api: Api) -> dict[str, dict[str, object]]:
    res = api.client.get("/agents")
    assert res.status_code == 200, res.text
    return {a["id"]: a for a in res.json()}


def _cli(server: RunningServer, *args: str) -> str:
    argv = [opsflow_executable(), "--url", server.url, "--token", server.token, "agents", *args]
    done = subprocess.run(argv, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _run_to_end(api: Api) -> str:
    execution_id = api.run("quick")
    api.wait_for(
        "the run completes",
        lambda: api.execution(execution_id)["status"] == "completed",
        timeout=60,
    )
    agent_id: str = api.execution(execution_id)["steps"][0]["jobs"][0]["agent_id"]
    return agent_id


def test_agents_are_listed_counted_and_a_drained_one_gets_no_jobs(
    server: RunningServer, api: Api, agents: Agents
) -> None:
    agents.start("first", "--label", "region=eu", "--concurrency", "3")
    first = agents.agent_id("first")
    api.wait_for("the agent is listed", lambda: first in _agents(api), timeout=30)
    listed = _agents(api)[first]
    assert listed["pools"] == ["default"] and listed["labels"] == {"region": "eu"}
    assert listed["concurrency"] == 3  # the job slots it registered with
    assert listed["version"] == opsflow.__version__ and listed["online"] is True
    assert listed["draining"] is False and listed["running"] == []

    api.publish("quick", QUICK)
    assert _run_to_end(api) == first
    shown = api.client.get(f"/agents/{first}").json()
    assert shown["jobs_done"] == 1 and shown["jobs_failed"] == 0

    agents.start("second")
    second = agents.agent_id("second")
    api.wait_for("the second agent is listed", lambda: second in _agents(api), timeout=30)
    assert "draining" in _cli(server, "drain", first)
    listing = _cli(server, "list")
    assert first in listing and second in listing and "online, draining" in listing, listing
    header, *rows = listing.splitlines()
    assert "CONCURRENCY" in header.split(), header
    slots = header.split().index("CONCURRENCY")
    # Its labels and state have no spaces but "online, draining": count from the right.
    row = next(r for r in rows if r.startswith(first)).split()
    assert row[slots - len(header.split())] == "3", listing
    for _ in range(3):
        assert _run_to_end(api) == second
    assert _agents(api)[second]["jobs_done"] == 3
    assert api.client.get("/agents/nobody").status_code == 404

    # Filters: by pool and by state (online includes the draining one); a bad state is a
    # 422 naming the field; the CLI passes them on.
    def ids_of(query: str) -> list[str]:
        return [str(a["id"]) for a in api.client.get(f"/agents?{query}").json()]

    assert ids_of("state=draining") == [first]
    assert sorted(ids_of("state=online&pool=default")) == sorted([first, second])
    assert ids_of("pool=eu") == [] and ids_of("state=revoked") == []
    bad = api.client.get("/agents?state=asleep")
    assert bad.status_code == 422 and "state" in bad.text, bad.text
    only_draining = _cli(server, "list", "--state", "draining")
    assert first in only_draining and second not in only_draining, only_draining
    # An agent is named by the start of its id, as executions are.
    shown_text = _cli(server, "show", first[: len(first) - 4])
    assert "region=eu" in shown_text, shown_text
    assert first.startswith("agent-") and second.startswith("agent-"), (first, second)
    for given, said in (("agent-", "is ambiguous: it matches"), ("zz", "no agent id starts with")):
        argv = [opsflow_executable(), "--url", server.url, "--token", server.token]
        done = subprocess.run(
            [*argv, "agents", "show", given], env=clean_env(), capture_output=True, text=True
        )
        assert done.returncode == 1 and said in done.stderr, done.stderr
    assert any(line.split() == ["concurrency", "3"] for line in shown_text.splitlines()), shown_text


def test_a_drained_agent_gets_no_job_from_the_drain_on(
    server: RunningServer, api: Api, agents: Agents
) -> None:
    """New-user trial: a run started right after ``agents drain`` was still handed to the
    agent (its claim, waiting since before the drain, and the server's note of its presence
    said it was not draining for up to half a lease). From the drain's answer on, no job."""
    agents.start("only")
    only = agents.agent_id("only")
    api.wait_for("the agent is listed", lambda: only in _agents(api), timeout=30)
    api.publish("quick", QUICK)
    assert _run_to_end(api) == only  # its next claim waits, its presence just written
    assert "draining" in _cli(server, "drain", only)
    execution_id = api.run("quick")
    # Three of the agent's presence rounds (half a lease each): a claim after each.
    until = time.monotonic() + 3 * LEASE / 2
    while time.monotonic() < until:
        (step,) = api.execution(execution_id)["steps"]
        assert [j["agent_id"] for j in step["jobs"]] == [None], step
        time.sleep(0.1)
    assert "takes jobs again" in _cli(server, "drain", "--undo", only)
    api.wait_for(
        "the run completes once the agent is undrained",
        lambda: api.execution(execution_id)["status"] == "completed",
        timeout=30,
    )


ELSEWHERE = """
id: elsewhere
steps:
  - {id: work, type: script, shell: sh, run: "true", agent: {pool: eu, labels: {region: us}}}
"""


# Replicas share one PostgreSQL: this test has no SQLite variant (nothing to skip there).
@pytest.mark.parametrize("agent_db", [b for b in BACKENDS if b == "postgresql"], indirect=True)
def test_a_replica_explains_a_waiting_step_with_agents_another_replica_saw(
    agent_db: str, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        run_server(
            agent_db, tmp_path / "a", "--no-local-agent", launch=warm_launch, env=server_env()
        ) as a,
        run_server(
            agent_db, tmp_path / "b", "--no-local-agent", launch=warm_launch, env=server_env()
        ) as b,
    ):
        fleet = Agents(a, tmp_path / "agents")
        try:
            fleet.start("eu", "--pool", "eu", "--label", "region=eu")
            eu = fleet.agent_id("eu")
            on_b = Api(b.url, b.token)
            on_b.wait_for("B lists the agent", lambda: eu in _agents(on_b), timeout=30)
            on_b.publish("elsewhere", ELSEWHERE)
            execution_id = on_b.run("elsewhere")

            def reason() -> object:
                return on_b.execution(execution_id)["steps"][0]["pending_reason"]

            assert reason() == "no agent of pool eu has the labels region=us"
            assert on_b.client.post(f"/agents/{eu}/drain").status_code == 200
            assert reason() == "no agent serves pool eu"
        finally:
            fleet.close()


def test_an_agent_says_its_pool_and_labels_and_is_offline_at_once_after_a_clean_stop(
    server: RunningServer, api: Api, agents: Agents
) -> None:
    """The start line names the pool and labels; SIGTERM drains and the agent tells the
    server it leaves, so `opsflow agents list` shows it offline at once (not for ~30 s
    online); its next start brings it back online."""
    leaving = agents.start("leaving", "--pool", "eu", "--label", "region=eu")
    agent_id = agents.agent_id("leaving")
    api.wait_for("the agent is listed", lambda: agent_id in _agents(api), timeout=30)
    first_line = agents.log("leaving").splitlines()[0]
    assert "pool eu" in first_line and "labels region=eu" in first_line, first_line
    assert _agents(api)[agent_id]["online"] is True
    assert "online" in _cli(server, "list").split(agent_id, 1)[1].splitlines()[0]

    leaving.terminate()
    assert leaving.wait(timeout=30) == 0, agents.log("leaving")
    stopped = time.monotonic()
    assert _agents(api)[agent_id]["online"] is False
    row = _cli(server, "list").split(agent_id, 1)[1].splitlines()[0]
    assert "offline" in row, row
    assert time.monotonic() - stopped < 30  # well within the online timeout

    agents.start("leaving", "--pool", "eu", "--label", "region=eu")
    api.wait_for("online again", lambda: _agents(api)[agent_id]["online"] is True, timeout=30)

    # A token agent that names its pool by token only says which pool it got.
    agents.start("plain", "--label", "tier=web")
    plain = agents.agent_id("plain")
    api.wait_for("the second agent is listed", lambda: plain in _agents(api), timeout=30)
    api.wait_for(
        "it says its token's pool",
        lambda: (
            f"agent {plain} serving pool default (its token's) with labels tier=web"
            in agents.log("plain")
        ),
        timeout=30,
    )


def test_only_a_server_that_runs_its_local_agent_keeps_an_agent_id(
    agent_db: str, tmp_path: Path
) -> None:
    """New-user trial: a server with its local agent off (``--no-local-agent``, or an API-only
    replica) wrote ``agent-id`` into its data dir all the same, naming an agent that never ran;
    the one that runs its local agent keeps it and is listed under it."""
    for name, args in (("no-agent", ("--no-local-agent",)), ("api", ("--role", "api"))):
        data = tmp_path / name
        data.mkdir()
        with run_server(agent_db, data, *args, launch=warm_launch, env=server_env()) as running:
            assert Api(running.url, running.token).client.get("/agents").json() == []
        assert not (data / "agent-id").exists(), f"{name}: {sorted(p.name for p in data.iterdir())}"

    data = tmp_path / "local"
    data.mkdir()
    with run_server(agent_db, data, launch=warm_launch, env=server_env()) as running:
        agent_id = (data / "agent-id").read_text(encoding="utf-8").strip()
        api = Api(running.url, running.token)
        api.wait_for("the local agent is listed", lambda: agent_id in _agents(api), timeout=30)
        # Its job slots are the server's --concurrency (4 by default), as it registered them.
        assert _agents(api)[agent_id]["concurrency"] == 4
        # and its host is the server's (a remote agent's is its own), as a remote agent says
        assert _agents(api)[agent_id]["hostname"] == socket.gethostname()
