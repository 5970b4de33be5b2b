"""PostgreSQL restarted under two replicas (api and worker): without anyone stepping in, the run
that was in flight finishes and new runs start and finish. Runs on a private cluster this test
starts itself (``initdb`` under ``runuser -u postgres``), never the shared server."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.servers import RunningServer, free_port, run_server

pytestmark = pytest.mark.timeout(180)

PG_BIN = Path("/usr/lib/postgresql/15/bin")
FLOW = """\
id: restarted
steps:
  - {id: slow, type: script, shell: sh, run: 'sleep 4; echo slept'}
  - {id: after, type: script, shell: sh, needs: [slow], run: 'echo after'}
"""
YAML = {"Content-Type": "application/yaml"}


class Cluster:
    """A private PostgreSQL cluster on a free port, run as the postgres user."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="opsflow-pg-"))
        self.port = free_port()
        shutil.chown(self.dir, "postgres", "postgres")
        self._pg("initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres")

    def _pg(self, tool: str, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / tool), *args],
            check=True,
            capture_output=True,
        )

    def ctl(self, action: str, *args: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        data = str(self.dir / "data")
        log = str(self.dir / "log")
        self._pg("pg_ctl", "-D", data, "-o", options, "-l", log, "-w", action, *args)

    def url(self, db: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None:
        pytest.skip("needs PostgreSQL 15's initdb and runuser")
    pg = Cluster()
    pg.ctl("start")
    try:
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE opsflow")
        yield pg
    finally:
        pg.ctl("stop", "-m", "immediate")
        pg.remove()


def call(server: RunningServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.token}", **kwargs.pop("headers", {})}
    return httpx.request(method, f"{server.url}/api/v1{path}", headers=headers, **kwargs)


def eventually(fn: Any, timeout: float) -> Any:
    """``fn()`` until it returns something true; the database may be coming back meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fn()
            if value:
                return value
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.2)  # the test's own view while PostgreSQL restarts


def status(server: RunningServer, execution_id: str) -> str | None:
    response = call(server, "GET", f"/executions/{execution_id}")
    return str(response.json()["status"]) if response.status_code == 200 else None


def test_replicas_survive_a_postgresql_restart(cluster: Cluster, tmp_path: Path) -> None:
    db = cluster.url("opsflow")
    (tmp_path / "api").mkdir()
    (tmp_path / "worker").mkdir()
    with (
        run_server(db, tmp_path / "worker", "--role", "worker"),
        run_server(db, tmp_path / "api", "--role", "api") as api,
    ):
        saved = call(api, "PUT", "/workflows/restarted?publish=true", content=FLOW, headers=YAML)
        assert saved.status_code == 201, saved.text
        in_flight = call(api, "POST", "/workflows/restarted/runs", json={}).json()["id"]
        eventually(lambda: status(api, in_flight) == "running", 20)

        cluster.ctl("restart", "-m", "fast")
        restarted = time.monotonic()

        def start() -> str | None:
            response = call(api, "POST", "/workflows/restarted/runs", json={})
            return str(response.json()["id"]) if response.status_code == 201 else None

        after = eventually(start, 30)
        for execution_id in (in_flight, after):
            eventually(lambda: status(api, execution_id) in ("completed", "failed"), 40)  # noqa: B023
            assert status(api, execution_id) == "completed"
        print(f"both runs completed {time.monotonic() - restarted:.1f}s after the restart")
