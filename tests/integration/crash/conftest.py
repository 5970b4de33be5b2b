"""A real ``opsflow server`` that the crash tests kill with SIGKILL and start again.

Each server is its own process running the ``opsflow server`` command (the console script's
entry point, forked from a warm interpreter by ``zygote.py`` so a restart costs the start-up,
not seconds of imports), on the test's fresh database (``db_url``: SQLite and PostgreSQL) and
its own data dir, so a restart finds exactly what the dead process left: the database, the
bundles and the admin token. Lease and heartbeat are
shortened through ``OPSFLOW_LEASE_SECONDS`` / ``OPSFLOW_HEARTBEAT_SECONDS`` so a lost job is
noticed in seconds, not the default 15 s.

While the server is down, :meth:`CrashServer.jobs` reads the jobs table directly: the dead
process can no longer change it, so what it shows is exactly what the kill interrupted.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsflow.steps.scope import reap_stale_cgroups
from opsflow.store import jobs as jobs_store
from opsflow.store.db import Database
from opsflow.store.jobs import Job
from tests.servers import Zygote, alive, free_port, run_server, step_cgroups


def epoch(iso: str | None) -> float | None:
    """The API's ISO 8601 times as epoch seconds, comparable with ``time.time()``."""
    return None if iso is None else datetime.fromisoformat(iso).timestamp()


class Api:
    """The few API calls the crash tests make, against one server incarnation."""

    def __init__(self, url: str, token: str) -> None:
        self.client = httpx.Client(
            base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def close(self) -> None:
        self.client.close()

    def publish(self, workflow_id: str, yaml_text: str) -> None:
        res = self.client.put(
            f"/workflows/{workflow_id}",
            params={"publish": "true"},
            content=yaml_text,
            headers={"Content-Type": "application/yaml"},
        )
        assert res.status_code in (200, 201), res.text

    def run(self, workflow_id: str, params: dict[str, Any] | None = None) -> str:
        res = self.client.post(f"/workflows/{workflow_id}/runs", json={"params": params or {}})
        assert res.status_code == 201, res.text
        execution_id: str = res.json()["id"]
        return execution_id

    def execution(self, execution_id: str) -> dict[str, Any]:
        res = self.client.get(f"/executions/{execution_id}")
        assert res.status_code == 200, res.text
        detail: dict[str, Any] = res.json()
        return detail

    def wait_for(
        self,
        what: str,
        check: Callable[[], bool],
        *,
        timeout: float,
        explain: Callable[[], str] = lambda: "",
    ) -> None:
        """Poll the API (the only event a separate process offers) until ``check`` holds."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not within {timeout}s\n{explain()}")
            time.sleep(0.02)


class CrashServer:
    """One data dir and database; any number of server processes over time, one at a time."""

    def __init__(
        self,
        zygote: Zygote,
        db_url: str,
        data_dir: Path,
        *,
        lease: float,
        heartbeat: float,
        concurrency: int = 6,
    ) -> None:
        self.zygote = zygote
        self.concurrency = concurrency
        self.db_url = db_url
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / f"{data_dir.name}-server.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OPSFLOW_")}
        self.env |= {
            "OPSFLOW_LEASE_SECONDS": str(lease),
            "OPSFLOW_HEARTBEAT_SECONDS": str(heartbeat),
            "OPSFLOW_ADMIN_PASSWORD": "crash-test-admin-pw",
        }
        self.data_dir.mkdir(parents=True, exist_ok=True)  # the server's working directory
        self.running: ExitStack | None = None
        self.pid: int | None = None
        self.api: Api | None = None
        self.starts = 0
        self.kills = 0

    def start(self) -> Api:
        """Start a server process and return its API once ``/healthz`` answers (the runtime
        has resumed every unfinished execution by then: uvicorn serves after the lifespan)."""
        assert self.running is None, "a server is already running"
        self.starts += 1
        with self.log.open("a") as log:
            log.write(f"\n===== start {self.starts} at {time.time():.3f} =====\n")
        stack = ExitStack()
        started = stack.enter_context(
            run_server(
                *(self.db_url, self.data_dir, "--concurrency", str(self.concurrency)),
                port=self.port,
                env=self.env,
                log=self.log,
                launch=self.zygote.launch,
            )
        )
        self.running = stack
        self.pid = started.pid
        self.api = Api(self.url, started.token)
        return self.api

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs; in-flight transactions die with the process."""
        assert self.running is not None and self.pid is not None, "no server to kill"
        os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(self.pid):  # gone once the kernel has reaped it: its sockets are closed
            if time.monotonic() > deadline:
                pytest.fail(f"server {self.pid} still alive 10s after SIGKILL")
            time.sleep(0.005)
        self.running.close()  # run_server's own stop finds nothing left to stop
        self.running = None
        self.pid = None
        self.kills += 1
        if self.api is not None:
            self.api.close()
            self.api = None

    def stop(self) -> None:
        """End of test: whatever is running goes, the same way."""
        if self.pid is not None:
            self.kill()

    @property
    def work_root(self) -> Path:
        """The local agent's work root, as it names its step cgroups (``Agent`` resolves it)."""
        return (self.data_dir / "work").resolve()

    def jobs(self, execution_ids: list[str]) -> list[Job]:
        """Every job of these executions, read straight from the database."""
        db = Database(self.db_url)
        try:
            with db.session() as session:
                return [j for e in execution_ids for j in jobs_store.jobs_of_execution(session, e)]
        finally:
            db.dispose()

    def log_tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def zygote() -> Iterator[Zygote]:
    """One warm interpreter per session that forks server processes."""
    z = Zygote()
    yield z
    z.close()


@pytest.fixture
def crash_server(
    zygote: Zygote, db_url: str, tmp_path: Path
) -> Iterator[Callable[..., CrashServer]]:
    """Make a :class:`CrashServer` on the test's fresh database; none outlives the test."""
    made: list[CrashServer] = []

    def make(*, lease: float, heartbeat: float, concurrency: int = 6) -> CrashServer:
        data_dir = tmp_path / f"data{len(made)}"
        server = CrashServer(
            zygote, db_url, data_dir, lease=lease, heartbeat=heartbeat, concurrency=concurrency
        )
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()
    # A server killed for good leaves its step cgroups (and what still runs in them) to the
    # next start on its work root, which never comes: do what that start would do.
    for server in made:
        reap_stale_cgroups(server.work_root)
    left = [name for server in made for name in step_cgroups(server.work_root)]
    assert not left, f"the test's step cgroups outlived it: {left}"
