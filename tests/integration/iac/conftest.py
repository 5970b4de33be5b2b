"""Fixtures: a real ``opsflow server`` with its local agent (a fresh one per test, on each
database backend), started with the environment a test needs, and a local HTTP stand-in for
the outside services a workflow calls (a health endpoint, a chat webhook)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsflow.cli.bundle import pack_bundle
from tests.servers import clean_env, opsflow_executable, run_server


class Server:
    """A running server: its URL, an admin API client, and how to reach it from the CLI."""

    def __init__(self, url: str, token: str, api: httpx.Client, cwd: Path) -> None:
        self.url = url
        self.token = token
        self.api = api
        self.cwd = cwd

    def apply(self, workflow_dir: Path, wf_id: str) -> None:
        files: dict[str, tuple[str | None, str | bytes] | tuple[str | None, bytes, str]] = {
            "definition": (None, (workflow_dir / "workflow.yaml").read_text()),
            "bundle": ("bundle.tar.gz", pack_bundle(workflow_dir), "application/gzip"),
        }
        r = self.api.put(f"/workflows/{wf_id}", params={"publish": "true"}, files=files)
        assert r.status_code in (200, 201), r.text

    def run(self, wf_id: str, params: dict[str, Any] | None = None) -> str:
        r = self.api.post(f"/workflows/{wf_id}/runs", json={"params": params or {}})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def execution(self, eid: str) -> dict[str, Any]:
        r = self.api.get(f"/executions/{eid}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait(self, eid: str, until: Callable[[dict[str, Any]], bool], timeout: float = 120) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            ex = self.execution(eid)
            if until(ex):
                return ex
            assert time.monotonic() < deadline, (
                f"gave up waiting: {ex['status']} {ex['engine_log']}"
            )
            time.sleep(0.2)  # the API is polled as a user's client would

    def cli(self, *args: str, token: str | None = None) -> str:
        """``opsflow ARGS`` against this server as the admin (or ``token``); its stdout."""
        env = {**clean_env(), "OPSFLOW_URL": self.url, "OPSFLOW_TOKEN": token or self.token}
        done = subprocess.run(
            [opsflow_executable(), *args],
            env={**env, "COLUMNS": "250"},
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"opsflow {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done.stdout


@pytest.fixture
def start_server(db_url: str, tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Server]]:
    """Start ``opsflow server`` (local agent on) with extra environment; stopped afterwards."""
    with ExitStack() as stack:  # stops the servers (and closes their clients) in reverse
        servers: list[Server] = []

        def start(env: dict[str, str]) -> Server:
            data_dir = tmp_path / f"data-{len(servers)}"
            data_dir.mkdir()
            running = stack.enter_context(run_server(db_url, data_dir, env={**clean_env(), **env}))
            api = stack.enter_context(
                httpx.Client(
                    base_url=f"{running.url}/api/v1",
                    headers={"Authorization": f"Bearer {running.token}"},
                    timeout=30,
                )
            )
            servers.append(Server(running.url, running.token, api, data_dir))
            return servers[-1]

        yield start


@pytest.fixture
def server(start_server: Callable[[dict[str, str]], Server]) -> Server:
    return start_server({})


class StandIn:
    """A local HTTP service: GET ``/healthz`` answers 200; every POST is kept by path."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        self.gets: list[str] = []
        self._changed = threading.Condition()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with stand_in._changed:
                    stand_in.gets.append(self.path)
                    stand_in._changed.notify_all()
                ok = self.path.endswith("/healthz")
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status": "ok"}' if ok else b"{}")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with stand_in._changed:
                    stand_in.posts.append((self.path, json.loads(body or b"null")))
                    stand_in._changed.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def posted(self, path: str, timeout: float = 30) -> list[Any]:
        """The bodies POSTed to ``path``, waiting until there is at least one."""
        with self._changed:
            self._changed.wait_for(lambda: any(p == path for p, _ in self.posts), timeout)
            return [body for p, body in self.posts if p == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    service = StandIn()
    try:
        yield service
    finally:
        service.close()
