"""An opsflow app per test on each backend (the secrets tests' fixtures), and a local HTTP
server that wants a bearer token, for connection tests that call out for real."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.integration.secrets.conftest import (  # noqa: F401  (fixtures used by these tests)
    client,
    settings,
    token_for,
)
from tests.sshd import ssh_user_key, sshd_hosts  # noqa: F401  (fixtures)

BEARER = "bearer-Tok3n-for-the-api-0042"


class _Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, str]]
    posted: list[tuple[str, str]]

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers.items()))
        ok = self.headers.get("Authorization") == f"Bearer {BEARER}"
        body = b'{"ok": true}' if ok else b'{"error": "who are you"}'
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.posted.append((self.path, self.rfile.read(length).decode()))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


class ApiServer:
    """A real HTTP server on loopback: GET answers 200 with the right bearer token, 401
    otherwise; POST (a json:// notification) is kept in ``posted`` and answered 200."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.posted: list[tuple[str, str]] = []
        handler = type("Handler", (_Handler,), {"seen": self.seen, "posted": self.posted})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ApiServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def api_server() -> Iterator[ApiServer]:
    with ApiServer() as server:
        yield server
