"""A tiny reverse proxy on loopback between an ``opsflow agent`` and its server, told by the
test what to do with each request: pass it on, answer a 5xx itself, reset the connection, or
pass it on and then hang up without the server's answer (the answer lost on the wire).

A thread per connection (``ThreadingHTTPServer``) with HTTP/1.1 keep-alive, as a load
balancer would keep it; requests go upstream through one ``httpx.Client``. Only the agent
protocol goes through it in the tests; bodies are read whole (no streaming).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass(frozen=True)
class Forward:
    """Pass the request on and its answer back."""


@dataclass(frozen=True)
class Answer:
    """Answer ``status`` without asking the server (a server whose database is down, a
    proxy whose upstream is gone)."""

    status: int


@dataclass(frozen=True)
class Reset:
    """Reset the connection (RST) without an answer, before the server sees the request."""


@dataclass(frozen=True)
class Lose:
    """Pass the request on, let the server answer, then close the connection without passing
    the answer back: the server acted, the client never learns it."""


Action = Forward | Answer | Reset | Lose
# (method, path) -> what to do with this request.
Policy = Callable[[str, str], Action]


class Proxy:
    """``url`` is where clients connect; ``policy`` may be swapped at any time; ``seen``
    counts what was done per (path, action name)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.policy: Policy = lambda _method, _path: Forward()
        self.seen: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=httpx.Timeout(120.0, connect=5.0))
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            def do_POST(self) -> None:
                proxy._handle(self)

            def do_PUT(self) -> None:
                proxy._handle(self)

            def do_DELETE(self) -> None:
                proxy._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def count(self, path_part: str, action: str) -> int:
        """How many requests whose path holds ``path_part`` got ``action`` (a class name)."""
        with self._lock:
            return sum(
                n for (path, act), n in self.seen.items() if path_part in path and act == action
            )

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        action = self.policy(handler.command, handler.path)
        with self._lock:
            self.seen[(handler.path, type(action).__name__)] += 1
        match action:
            case Reset():
                sock = handler.connection
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                handler.close_connection = True
                return
            case Answer(status=status):
                problem = {
                    "type": "about:blank",
                    "title": "Service unavailable" if status != 500 else "Internal error",
                    "status": status,
                    "detail": "the proxy answers this itself (the test's outage)",
                }
                data = json.dumps(problem).encode()
                handler.send_response(status)
                handler.send_header("Content-Type", "application/problem+json")
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                handler.wfile.write(data)
                return
            case Forward() | Lose():
                headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream = self._http.request(
                    handler.command, self.upstream + handler.path, content=body, headers=headers
                )
                if isinstance(action, Lose):
                    handler.close_connection = True
                    return
                handler.send_response(upstream.status_code)
                for key, value in upstream.headers.items():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-encoding":
                        handler.send_header(key, value)
                handler.send_header("Content-Length", str(len(upstream.content)))
                handler.end_headers()
                handler.wfile.write(upstream.content)

    def serve(self) -> None:
        self._server.serve_forever(poll_interval=0.05)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()


@contextmanager
def running_proxy(upstream: str) -> Iterator[Proxy]:
    """A `Proxy` to ``upstream`` serving in a thread until the block ends."""
    proxy = Proxy(upstream)
    thread = threading.Thread(target=proxy.serve, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.close()
        thread.join(timeout=10)
