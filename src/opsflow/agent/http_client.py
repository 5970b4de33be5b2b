"""``opsflow agent``'s `AgentClient`: the agent protocol over HTTP (``/api/v1/agent/...``).

It may know several servers (replicas of one deployment, when no load balancer sits in front
of them): it talks to one at a time and moves on to the next when that one does not answer.

Transport failures (refused, reset, cut off, timed out) and every 5xx answer (a replica whose
database is down answers 500; a load balancer without a healthy replica 502, 503 or 504)
become `ServerUnreachable`, which the agent waits out: it spools what it has to say, backs
off, tries again and delivers it once (the server's fencing refuses a second copy of what a
5xx hid having been done). A 409 becomes `StaleReport`; any other error answer (4xx) is
raised as `OpsflowError` with the server's problem title and detail.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import ssl
import sys
import tarfile
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpcore
import httpx
from pydantic import BaseModel

from opsflow.agent.client import Waiter
from opsflow.agent.protocol import (
    ArtifactRequest,
    CancelNotice,
    Claimed,
    ClaimedJob,
    ClaimRequest,
    HandBack,
    JobRef,
    JobReport,
    Leaving,
    LogBatch,
    Registered,
    Registration,
)
from opsflow.errors import Forbidden, OpsflowError, ServerUnreachable, StaleReport, Unauthorized

if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    # httpcore asks `import sniffio` several times per request (its current_async_library,
    # to choose between asyncio and trio). Without the package each ask searches sys.path
    # again: 10% of an agent's CPU in a fan-out of short steps (py-spy). A None entry answers
    # the same ImportError at once, and httpcore goes on with asyncio, as it did.
    sys.modules["sniffio"] = None  # type: ignore[assignment]

M = TypeVar("M", bound=BaseModel)
PREFIX = "/api/v1/agent"
HEARTBEAT_TIMEOUT = 10.0


class _NoWake:
    """Over HTTP a stop request arrives with the next heartbeat's answer only."""

    async def wait(self, timeout: float) -> bool:
        await asyncio.sleep(timeout)
        return False


class _OneWrite(httpcore.AsyncNetworkStream):
    """A connection whose writes wait for its next read: httpcore writes a request's head and
    its body apart, two sends and two TCP segments, so the server's event loop woke twice per
    agent request (once to parse the head, once for the body). Held back until the request is
    whole, they go out as one send. Measured (benchmarks/README.md, 2026-12-01): agent CPU
    per request 1.31 -> 1.06 ms, the server's 1.63 -> 1.40 ms. A write's failure now shows at
    the read after it: a transport error all the same (`ServerUnreachable`)."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._held: list[bytes] = []

    async def _flush(self, timeout: float | None) -> None:
        if self._held:
            data = b"".join(self._held)
            self._held = []
            await self._stream.write(data, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._held.append(buffer)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        await self._flush(timeout)
        return await self._stream.read(max_bytes, timeout)

    async def aclose(self) -> None:
        self._held = []
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        await self._flush(timeout)
        return _OneWrite(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _OneWriteBackend(httpcore.AnyIOBackend):
    """httpcore's asyncio network backend, its connections `_OneWrite`."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _OneWrite(
            await super().connect_tcp(host, port, timeout, local_address, socket_options)
        )


class _Transport(httpx.AsyncHTTPTransport):
    """httpx's transport over `_OneWriteBackend` (its pool is rebuilt with that backend:
    httpx takes no network backend of its own)."""

    def __init__(self) -> None:
        super().__init__()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_OneWriteBackend(),
        )


class HttpClient:
    """``servers``: one URL, or several replicas' URLs tried in turn."""

    def __init__(self, servers: str | list[str], token: str, *, timeout: float = 30.0) -> None:
        urls = [servers] if isinstance(servers, str) else list(servers)
        if not urls:
            raise ValueError("an agent needs at least one server URL")
        self._urls = [url.rstrip("/") for url in urls]
        self._current = 0
        self._http = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout, connect=5.0),
            transport=_Transport(),
        )

    async def close(self) -> None:
        await self._http.aclose()

    @property
    def server_url(self) -> str | None:
        return self._urls[self._current]

    def _unreachable(self, url: str, why: str) -> ServerUnreachable:
        """``url`` did not answer: the next call goes to the next server (if several)."""
        if len(self._urls) > 1 and self._urls[self._current] == url:
            self._current = (self._current + 1) % len(self._urls)
        return ServerUnreachable(f"{url}: {why}")

    async def _post(self, path: str, body: BaseModel, *, timeout: float | None = None) -> bytes:
        content = body.model_dump_json()
        url = self._urls[self._current]
        try:
            response = await self._http.post(
                url + PREFIX + path,
                content=content,
                headers={"Content-Type": "application/json"},
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise self._unreachable(url, repr(exc)) from exc
        _check(response, lambda why: self._unreachable(url, why))
        return response.content

    async def _get(self, path: str) -> bytes:
        url = self._urls[self._current]
        try:
            response = await self._http.get(url + PREFIX + path)
        except httpx.TransportError as exc:
            raise self._unreachable(url, repr(exc)) from exc
        _check(response, lambda why: self._unreachable(url, why))
        return response.content

    async def register(self, registration: Registration) -> Registered:
        return Registered.model_validate_json(await self._post("/register", registration))

    async def claim(self, request: ClaimRequest) -> list[ClaimedJob]:
        # The server holds the request up to ``wait`` seconds: allow that and some.
        data = await self._post("/claim", request, timeout=request.wait + 30.0)
        return Claimed.model_validate_json(data).jobs

    async def start(self, job: JobRef) -> CancelNotice:
        return CancelNotice.model_validate_json(await self._post("/start", job))

    async def heartbeat(self, job: JobRef) -> CancelNotice:
        # Short: a heartbeat that hangs (a stopped server, a dead proxy) must not outlast the
        # lease it keeps; the next one tries again.
        data = await self._post("/heartbeat", job, timeout=HEARTBEAT_TIMEOUT)
        return CancelNotice.model_validate_json(data)

    async def send_logs(self, batch: LogBatch) -> None:
        await self._post("/logs", batch)

    async def report(self, report: JobReport) -> None:
        await self._post("/report", report)

    async def hand_back(self, job: JobRef) -> None:
        await self._post("/hand-back", HandBack(job=job))

    async def leave(self, agent_id: str) -> None:
        await self._post("/leave", Leaving(agent_id=agent_id), timeout=HEARTBEAT_TIMEOUT)

    async def fetch_artifact(self, job: JobRef, step_id: str, name: str) -> bytes:
        return await self._post("/artifact", ArtifactRequest(job=job, step_id=step_id, name=name))

    async def fetch_bundle(self, digest: str, dest: Path) -> None:
        data = await self._get(f"/bundles/{digest}")
        await asyncio.to_thread(_untar, data, dest)

    def watch_cancel(self, job_id: str) -> AbstractAsyncContextManager[Waiter]:
        return self._no_wake()

    @asynccontextmanager
    async def _no_wake(self) -> AsyncIterator[Waiter]:
        yield _NoWake()


def _untar(data: bytes, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        # The "data" filter refuses absolute paths, escapes, links out and device files.
        tar.extractall(dest, filter="data")


def _check(response: httpx.Response, unreachable: Callable[[str], ServerUnreachable]) -> None:
    if response.status_code < 400:
        return
    if response.status_code >= 500:
        # Not the message's fault: the same message may land once the server is well again.
        raise unreachable(f"the server answered {response.status_code}")
    try:
        problem = response.json()
        message = str(problem.get("detail") or problem.get("title") or response.text)
    except ValueError:
        message = response.text or response.reason_phrase
    if response.status_code == 409:
        raise StaleReport(message)
    if response.status_code == 401:
        raise Unauthorized(message)
    if response.status_code == 403:
        raise Forbidden(message)
    error = OpsflowError(f"{response.request.method} {response.request.url.path}: {message}")
    error.status_code = response.status_code
    raise error
