"""Helpers for executor tests: a recording log sink, job specs, and a loopback HTTP server.

Everything here is real: executors run real processes and talk to a real HTTP server bound to
127.0.0.1 in a background thread.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opsflow.status import LogLevel, LogStream, StepType
from opsflow.steps.base import JobSpec


class RecordingSink:
    """A LogSink that keeps every line and lets a test await a line as it arrives."""

    def __init__(self) -> None:
        self.lines: list[tuple[LogStream, str]] = []
        self.levels: dict[str, LogLevel | None] = {}  # a line's text -> the level written
        self._waiters: list[tuple[Callable[[LogStream, str], bool], asyncio.Future[str]]] = []

    def write(self, stream: LogStream, text: str, level: LogLevel | None = None) -> None:
        assert "\n" not in text, "a log line must not contain a newline"
        self.lines.append((stream, text))
        self.levels[text] = level
        for waiter in list(self._waiters):
            matches, future = waiter
            if not future.done() and matches(stream, text):
                future.set_result(text)
                self._waiters.remove(waiter)

    def text(self, stream: LogStream) -> list[str]:
        """Every line written on ``stream``, in order."""
        return [text for s, text in self.lines if s is stream]

    async def wait_for(self, needle: str, stream: LogStream | None = None) -> str:
        """Return the first line (already written or arriving) containing ``needle``."""

        def matches(s: LogStream, text: str) -> bool:
            return needle in text and (stream is None or s is stream)

        for s, text in self.lines:
            if matches(s, text):
                return text
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.append((matches, future))
        return await asyncio.wait_for(future, 10)


def job(
    workdir: Path,
    step_type: StepType,
    config: Mapping[str, Any],
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    step_id: str = "step",
) -> JobSpec:
    """A JobSpec as an agent would receive it for attempt 1 of ``step_id``."""
    return JobSpec(
        job_id="job-1",
        execution_id="exec-1",
        step_id=step_id,
        attempt=1,
        type=step_type,
        config=dict(config),
        workdir=workdir,
        timeout=timeout,
        env=dict(env or {}),
    )


# --------------------------------------------------------------------------- HTTP server


@dataclass
class Received:
    """One request the loopback server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False  # keep the connection waiting until the server shuts down


class LoopbackServer:
    """A threaded HTTP/1.1 server on 127.0.0.1; tests set replies per path and read requests."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.received: list[Received] = []
        self.replies: dict[str, Reply] = {}
        self.release = threading.Event()
        self._arrived = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with server._arrived:
                    server.received.append(
                        Received(self.command, self.path, dict(self.headers.items()), body)
                    )
                    server._arrived.notify_all()
                reply = server.replies.get(self.path.split("?")[0], Reply(404, b"no route"))
                if reply.hold:
                    server.release.wait(30)
                    self.close_connection = True  # hang up without an answer
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        # A short poll interval only makes shutdown() quick; requests are served immediately.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def reply(self, path: str, reply: Reply) -> None:
        self.replies[path] = reply

    def wait_for_requests(self, count: int, timeout: float = 10) -> None:
        """Block until ``count`` requests have arrived (call through ``asyncio.to_thread``)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise TimeoutError(f"{len(self.received)} of {count} requests arrived")

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def self_signed_tls(directory: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1 (via openssl)."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
