"""Helpers for executor tests: a recording log sink, job specs, and a loopback HTTP server.

Everything here is real: executors run real processes and talk to a real HTTP server bound to
127.0.0.1 in a background thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opsflow.status import LogStream, StepType
from opsflow.steps.base import JobSpec


class RecordingSink:
    """A LogSink that keeps every line and lets a test await a line as it arrives."""

    def __init__(self) -> None:
        self.lines: list[tuple[LogStream, str]] = []
        self._waiters: list[tuple[Callable[[LogStream, str], bool], asyncio.Future[str]]] = []

    def write(self, stream: LogStream, text: str) -> None:
        assert "\n" not in text, "a log line must not contain a newline"
        self.lines.append((stream, text))
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

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.replies: dict[str, Reply] = {}
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.received.append(
                    Received(self.command, self.path, dict(self.headers.items()), body)
                )
                reply = server.replies.get(self.path.split("?")[0], Reply(404, b"no route"))
                if reply.hold:
                    server.release.wait(30)
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
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def reply(self, path: str, reply: Reply) -> None:
        self.replies[path] = reply

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
