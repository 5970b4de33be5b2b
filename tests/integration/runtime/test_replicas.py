"""Several ``opsflow server`` processes on one PostgreSQL database act as one: wake-ups cross
replicas through LISTEN/NOTIFY, so a live viewer on one replica sees what another did, and a
run started on one is carried out by another's agent."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsflow.steps.scope import reap_stale_cgroups
from tests.conftest import BACKENDS, _pg_admin, _pg_url, blank_pg_database
from tests.integration.api.test_live_feed import Feed
from tests.servers import RunningServer, clean_env, run_server, step_cgroups, warm_launch

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif("postgresql" not in BACKENDS, reason="replicas share a PostgreSQL"),
]

FLOW = "id: replicated\nsteps:\n  - {id: a, type: script, shell: sh, run: 'echo a'}\n" + (
    "  - {id: b, type: script, shell: sh, needs: [a], run: 'echo b'}\n"
)
YAML = {"Content-Type": "application/yaml"}


@pytest.fixture
def blank_pg() -> Iterator[str]:
    """An empty PostgreSQL database: the replicas migrate it themselves."""
    with blank_pg_database("opsflow_replicas") as url:
        yield url


@pytest.fixture
def pg_db(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh migrated PostgreSQL database (a copy of the session's template)."""
    template: str = request.getfixturevalue("_pg_template")
    name = f"opsflow_replicas_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield _pg_url(name)
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def call(server: RunningServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.token}", **kwargs.pop("headers", {})}
    return httpx.request(method, f"{server.url}/api/v1{path}", headers=headers, **kwargs)


def start_run(server: RunningServer) -> str:
    started = call(server, "POST", "/workflows/replicated/runs", json={})
    assert started.status_code == 201, started.text
    return str(started.json()["id"])


def wait_status(server: RunningServer, execution_id: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = call(server, "GET", f"/executions/{execution_id}").json()["status"]
        if status in ("completed", "failed", "cancelled"):
            return str(status)
        time.sleep(0.1)  # the test's own view; the servers wait on events
    return status


def replica_dirs(tmp_path: Path, *names: str) -> list[Path]:
    dirs = [tmp_path / name for name in names]
    for d in dirs:
        d.mkdir()
    return dirs


def test_replicas_share_live_events_and_work(blank_pg: str, tmp_path: Path) -> None:
    a_dir, b_dir = replica_dirs(tmp_path, "a", "b")
    with ExitStack() as stack:
        # Both start at once on the empty database: one migrates it while the other waits on
        # the migration lock, then finds it current.
        with ThreadPoolExecutor(2) as pool:
            starting = [
                pool.submit(
                    stack.enter_context,
                    run_server(blank_pg, a_dir, "--no-local-agent", launch=warm_launch),
                ),
                pool.submit(stack.enter_context, run_server(blank_pg, b_dir, launch=warm_launch)),
            ]
            a, b = (future.result() for future in starting)
        saved = call(a, "PUT", "/workflows/replicated?publish=true", content=FLOW, headers=YAML)
        assert saved.status_code == 201, saved.text

        feed = Feed(f"{a.url}/api/v1/events", {"Authorization": f"Bearer {a.token}"})
        stack.callback(feed.close)
        feed.next("ready")

        # A run started on B: A's live stream hears of it within a second, and of its end.
        sent = time.monotonic()
        on_b = start_run(b)
        feed.next("execution", lambda d: d["execution_id"] == on_b)
        heard = time.monotonic() - sent
        assert heard < 1.0, f"replica A heard of B's run after {heard:.2f}s"
        is_end = lambda d: d["execution_id"] == on_b and d["change"] == "ended"  # noqa: E731
        ended = feed.next("execution", is_end)
        assert ended.data["status"] == "completed"

        # A run started on A (no agent of its own): B's agent hears of the job and runs it.
        sent = time.monotonic()
        on_a = start_run(a)
        assert wait_status(a, on_a) == "completed"
        took = time.monotonic() - sent
        assert took < 10, f"the run on A took {took:.1f}s through B's agent"


def publish(server: RunningServer) -> None:
    saved = call(server, "PUT", "/workflows/replicated?publish=true", content=FLOW, headers=YAML)
    assert saved.status_code == 201, saved.text


def test_an_api_replica_and_a_worker_replica_complete_a_run(pg_db: str, tmp_path: Path) -> None:
    api_dir, worker_dir = replica_dirs(tmp_path, "api", "worker")
    with (
        run_server(pg_db, worker_dir, "--role", "worker", launch=warm_launch) as worker,
        run_server(pg_db, api_dir, "--role", "api", launch=warm_launch) as api,
    ):
        publish(api)
        execution_id = start_run(api)
        assert wait_status(api, execution_id) == "completed"
        steps = call(api, "GET", f"/executions/{execution_id}").json()["steps"]
        assert [s["status"] for s in steps] == ["succeeded", "succeeded"]
        # The worker answers health probes only: its API is the api replica's job.
        assert httpx.get(f"{worker.url}/healthz").status_code == 200
        refused = call(worker, "GET", f"/executions/{execution_id}")
        assert refused.status_code == 404


def test_an_api_replica_alone_leaves_steps_pending_for_want_of_an_agent(
    pg_db: str, tmp_path: Path
) -> None:
    (api_dir,) = replica_dirs(tmp_path, "api")
    with run_server(pg_db, api_dir, "--role", "api", launch=warm_launch) as api:
        publish(api)
        execution_id = start_run(api)
        deadline = time.monotonic() + 15
        first: dict[str, Any] = {}
        while time.monotonic() < deadline and not first.get("pending_reason"):
            first = call(api, "GET", f"/executions/{execution_id}").json()["steps"][0]
            time.sleep(0.1)  # the test's own view of a step that is meant to stay put
        # Its job waits in the queue, unclaimed, and the step says why.
        assert [job["status"] for job in first["jobs"]] == ["pending"], first
        assert first["pending_reason"] == "no agent serves pool default", first


# The first attempt sleeps long (and says its pid, to be cleaned up); the retry ends at once.
SLOW = """\
id: survives
steps:
  - id: slow
    type: script
    shell: sh
    retries: 1
    run: |
      if [ -e {marker} ]; then echo retried; exit 0; fi
      touch {marker}; echo $$ > {pidfile}; exec sleep 60
  - {{id: after, type: script, shell: sh, needs: [slow], run: 'echo after'}}
"""


def test_runs_of_a_replica_killed_mid_step_finish_on_another(pg_db: str, tmp_path: Path) -> None:
    victim_dir, survivor_dir = replica_dirs(tmp_path, "victim", "survivor")
    pidfile = tmp_path / "first-attempt.pid"
    flow = SLOW.format(marker=tmp_path / "first-attempt", pidfile=pidfile)
    # Short leases: a killed replica's attempts are declared lost within seconds.
    env = {
        **clean_env(),
        "OPSFLOW_ADMIN_PASSWORD": "admin-pw-for-tests",
        "OPSFLOW_LEASE_SECONDS": "2",
        "OPSFLOW_HEARTBEAT_SECONDS": "0.5",
    }
    try:
        with run_server(pg_db, victim_dir, env=env, launch=warm_launch) as victim:
            path = "/workflows/survives?publish=true"
            saved = call(victim, "PUT", path, content=flow, headers=YAML)
            assert saved.status_code == 201, saved.text
            started = call(victim, "POST", "/workflows/survives/runs", json={})
            execution_id = started.json()["id"]
            deadline = time.monotonic() + 20
            while True:  # until the victim's agent has the step running
                slow = call(victim, "GET", f"/executions/{execution_id}").json()["steps"][0]
                if any(job["status"] == "running" for job in slow["jobs"]):
                    break
                assert time.monotonic() < deadline, slow
                time.sleep(0.05)  # the test's own view of the step
            with run_server(pg_db, survivor_dir, env=env, launch=warm_launch) as survivor:
                os.kill(victim.pid, signal.SIGKILL)
                killed = time.monotonic()
                assert wait_status(survivor, execution_id, timeout=40) == "completed"
                print(f"finished {time.monotonic() - killed:.1f}s after the kill (lease 2 s)")
                steps = call(survivor, "GET", f"/executions/{execution_id}").json()["steps"]
                jobs = steps[0]["jobs"]
                assert [job["status"] for job in jobs] == ["failed", "completed"], jobs
                assert "lost" in (jobs[0]["error"] or ""), jobs[0]
                assert steps[1]["status"] == "succeeded"
    finally:
        with contextlib.suppress(ProcessLookupError, FileNotFoundError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)  # the dead replica's orphan
        # The killed replica's step cgroups would wait for a next start on its work root that
        # never comes: do what that start does, and check that nothing of the test is left.
        roots = [(d / "work").resolve() for d in (victim_dir, survivor_dir)]
        for root in roots:
            reap_stale_cgroups(root)
        left = [name for root in roots for name in step_cgroups(root)]
        assert not left, f"the test's step cgroups outlived it: {left}"
