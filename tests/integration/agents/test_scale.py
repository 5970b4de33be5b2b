"""Two server replicas on one PostgreSQL and three agents in two pools run 200 executions as
one system: ``kill -9`` of an agent and of a replica midway lose nothing and run no step twice
(checked in the database: one completed attempt per step; every other attempt is one the
killed agent held, failed as "agent lost")."""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest

from tests.conftest import BACKENDS
from tests.servers import run_server

from .conftest import Agents, Api, server_env

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif("postgresql" not in BACKENDS, reason="replicas share a PostgreSQL"),
]

RUNS = 200
FLOW = """
id: many
steps:
  - {id: build, type: script, shell: sh, run: "echo build; sleep 0.2"}
  - id: deploy
    type: script
    shell: sh
    needs: [build]
    agent: {pool: eu, labels: {region: eu}}
    run: "echo deploy; sleep 0.2"
"""


@pytest.mark.parametrize("agent_db", ["postgresql"], indirect=True)
def test_replicas_and_agents_run_200_executions_each_step_once_through_kills(
    agent_db: str, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        dirs = [tmp_path / "r1", tmp_path / "r2"]
        for d in dirs:
            d.mkdir()
        with ThreadPoolExecutor(2) as pool:
            started = [
                pool.submit(
                    stack.enter_context,
                    run_server(agent_db, d, "--no-local-agent", env=server_env()),
                )
                for d in dirs
            ]
            r1, r2 = (future.result() for future in started)
        # No load balancer: each agent knows both replicas and moves on when one is gone.
        via_r1, via_r2 = Agents(r1, tmp_path / "agents"), Agents(r2, tmp_path / "agents")
        stack.callback(via_r1.close)
        stack.callback(via_r2.close)
        victim = via_r1.start("a1", "--concurrency", "4", "--server", r2.url)
        via_r2.start("a2", "--concurrency", "4", "--server", r1.url)
        # The eu agent knows r2 only: r1's death must not matter to it.
        via_r2.start("eu", "--pool", "eu", "--label", "region=eu", "--concurrency", "4")
        victim_id = via_r1.agent_id("a1")
        api1, api2 = Api(r1.url, r1.token), Api(r2.url, r2.token)
        stack.callback(api1.client.close)
        stack.callback(api2.client.close)
        api1.publish("many", FLOW)
        with ThreadPoolExecutor(4) as pool:
            runs = list(pool.map(lambda i: (api1, api2)[i % 2].run("many"), range(RUNS)))
        began = time.monotonic()

        def completed() -> int:
            res = api2.client.get(
                "/executions", params={"workflow": "many", "status": "completed", "limit": 500}
            )
            assert res.status_code == 200, res.text
            return len(res.json()["items"])

        def victim_busy() -> bool:
            res = api2.client.get("/agents")
            assert res.status_code == 200, res.text
            return any(a["id"] == victim_id and a["running"] for a in res.json()["items"])

        api2.wait_for("a third of the runs complete", lambda: completed() >= RUNS // 3, timeout=120)
        api2.wait_for("the first agent holds jobs", victim_busy, timeout=30)
        os.kill(victim.pid, signal.SIGKILL)
        os.kill(r1.pid, signal.SIGKILL)
        api2.wait_for("every run completes", lambda: completed() == RUNS, timeout=180)
        print(
            f"{RUNS} runs in {time.monotonic() - began:.1f}s with a kill of an agent and a replica"
        )

        with psycopg.connect(agent_db.replace("postgresql+psycopg://", "postgresql://")) as db:
            rows = db.execute(
                "SELECT execution_id, step_id, attempt, status, error, agent_id FROM jobs"
            ).fetchall()
    attempts: dict[tuple[str, str], list[tuple[int, str, str | None, str | None]]] = defaultdict(
        list
    )
    for execution_id, step_id, attempt, status, error, agent_id in rows:
        attempts[(execution_id, step_id)].append((attempt, status, error, agent_id))
    assert set(attempts) == {(run, step) for run in runs for step in ("build", "deploy")}
    lost = 0
    for key, tries in attempts.items():
        done = [t for t in tries if t[1] == "completed"]
        assert len(done) == 1, (key, tries)
        for attempt in tries:
            if attempt[1] != "completed":
                # The only other outcome: an attempt the killed agent held.
                assert attempt[1] == "failed" and "agent lost" in (attempt[2] or ""), (key, tries)
                assert attempt[3] == victim_id, (key, tries)
                lost += 1
    assert lost >= 1, "the kill of the agent met no job"
