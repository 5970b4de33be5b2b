"""The ``http`` step: one HTTP request, its response in the step's outputs.

Fields: ``method`` (default GET), ``url``, ``headers``, ``body`` (text) or ``json`` (any JSON
value), ``expect_status`` (one code or a list; empty means any 2xx), ``follow_redirects``
(default true), ``verify_tls`` (default true). The step's ``timeout`` bounds the whole request
(default 60 s when the step sets none). ``connection`` names an ``http`` connection: a ``url``
without a scheme is a path appended to its ``base_url`` (``/health`` under
``https://api.example/v2`` is ``https://api.example/v2/health``), and its auth (bearer, basic
or a header) is sent unless the step's ``headers`` set the same header.

Outputs: ``status``, ``headers`` (lower-case names, repeated headers joined with ", "), ``body``
(parsed when the response is JSON, else text; at most 1 MiB is kept) and ``elapsed_ms``.
Outputs are filled on an unexpected status too, so a ``.failed`` handler can read the response.

Retry intent: 5xx, 429, connection errors and timeouts may be retried; any other unexpected
status (a 4xx), a certificate the agent does not trust, or a bad configuration will not get
better by trying again. A request that got no answer says why in words ("connection refused
(db:5432)", "name not resolved (api.example.invalid)", "TLS verification failed (...):
self-signed certificate", "timed out after 30s").
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsflow.status import JobStatus, LogLevel, LogStream, StepType

from .base import CancelSignal, Connection, JobSpec, LogSink, StepResult, format_seconds
from .config import StepConfig, StepConfigError, connection_of
from .network import TIMED_OUT, TLS_VERIFICATION_FAILED, NetworkCause, cause_of, without_errno

if TYPE_CHECKING:
    import httpx

# httpx (with its command line's rich and pygments, about 3 MB) is imported by the first http
# step, in a worker thread, not when the agent loads its executors: an idle server does not
# hold it (tests/unit/test_server_imports.py). The functions below import it locally.

DEFAULT_TIMEOUT = 60.0
MAX_BODY_BYTES = 1024 * 1024
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_RETRYABLE_4XX = frozenset({408, 425, 429})


@dataclass(frozen=True)
class _Request:
    method: str
    url: httpx.URL
    headers: dict[str, str]
    content: str | None
    json_body: Any
    has_json: bool
    expect: tuple[int, ...]
    follow_redirects: bool
    verify_tls: bool


@dataclass(frozen=True)
class _Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: Any
    truncated: bool
    elapsed_ms: int
    redirects: tuple[tuple[int, str], ...]


class HttpExecutor:
    """Runs ``http`` steps with ``httpx.AsyncClient`` (never blocks the event loop)."""

    type = StepType.HTTP

    async def run(self, spec: JobSpec, log: LogSink, cancel: CancelSignal) -> StepResult:
        """Send the request; see the module docstring for fields, outputs and retry intent."""
        if "httpx" not in sys.modules:
            await asyncio.to_thread(__import__, "httpx")
        import httpx

        try:
            request = _read_request(StepConfig(spec.config), connection_of(spec, "http"))
        except StepConfigError as exc:
            log.write(LogStream.SYSTEM, str(exc), LogLevel.ERROR)
            return exc.result()
        if cancel.requested:
            return StepResult(JobStatus.CANCELLED, error="cancelled before start", retryable=False)
        timeout = spec.timeout if spec.timeout is not None else DEFAULT_TIMEOUT
        log.write(LogStream.SYSTEM, f"{request.method} {public_url(request.url)}")
        sending = asyncio.ensure_future(_send(request, timeout))
        cancelled = asyncio.ensure_future(cancel.wait())
        try:
            done, _ = await asyncio.wait(
                {sending, cancelled}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            cancelled.cancel()
            if not sending.done():
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sending
        if sending not in done:
            if cancelled in done and not cancel.timed_out:
                return StepResult(JobStatus.CANCELLED, error="cancelled", retryable=False)
            return _timed_out(timeout, log)  # our clock, or the server's (a timed-out stop)
        try:
            response = sending.result()
        except httpx.TimeoutException:
            return _timed_out(timeout, log)
        except httpx.TooManyRedirects as exc:
            return _failed(log, f"too many redirects: {exc}", retryable=False)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            return StepConfigError("url", str(exc)).result()
        except httpx.HTTPError as exc:
            return _network_failure(exc, request.url, timeout, log)
        return _result(request, response, log)


def public_url(url: httpx.URL) -> str:
    """The URL without user and password, fit for a log line."""
    return str(url.copy_with(userinfo=b"")) if url.userinfo else str(url)


def connection_headers(values: Mapping[str, str]) -> dict[str, str]:
    """The headers an ``http`` connection's ``auth`` adds: ``bearer`` (token), ``basic``
    (username, password; RFC 7617) or ``header`` (header_name: header_value); none for
    ``none``."""
    match values.get("auth", "none"):
        case "bearer":
            return {"Authorization": f"Bearer {values['token']}"}
        case "basic":
            pair = f"{values['username']}:{values['password']}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        case "header":
            return {values["header_name"]: values["header_value"]}
        case _:
            return {}


def _read_request(config: StepConfig, connection: Connection | None) -> _Request:
    import httpx

    method = (config.text("method") or "GET").strip().upper()
    if method not in METHODS:
        raise StepConfigError(
            "method", f"{method!r} is not supported; use one of {', '.join(METHODS)}"
        )
    raw_url = config.required_text("url").strip()
    headers = config.string_map("headers")
    if connection is not None:
        if "://" not in raw_url:
            raw_url = connection.values["base_url"].rstrip("/") + "/" + raw_url.lstrip("/")
        given = {name.lower() for name in headers}
        for name, value in connection_headers(connection.values).items():
            if name.lower() not in given:
                headers[name] = value
    try:
        url = httpx.URL(raw_url)
    except httpx.InvalidURL as exc:
        raise StepConfigError("url", f"is not a valid URL: {exc}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise StepConfigError("url", "must be an absolute http:// or https:// URL")
    body = config.raw("body")
    if body is not None and not isinstance(body, str):
        raise StepConfigError("body", "must be text; use `json` to send structured data")
    if body is not None and config.has("json"):
        raise StepConfigError("body", "give either `body` or `json`, not both")
    return _Request(
        method=method,
        url=url,
        headers=headers,
        content=body,
        json_body=config.raw("json"),
        has_json=config.has("json"),
        expect=config.status_list("expect_status"),
        follow_redirects=config.flag("follow_redirects", default=True),
        verify_tls=config.flag("verify_tls", default=True),
    )


async def _send(request: _Request, timeout: float) -> _Response:
    """Send the request and read at most MAX_BODY_BYTES of the response body."""
    import httpx

    async with httpx.AsyncClient(
        follow_redirects=request.follow_redirects,
        verify=request.verify_tls,
        timeout=httpx.Timeout(timeout),
    ) as client:
        started = time.perf_counter()
        kwargs: dict[str, Any] = {"headers": request.headers}
        if request.has_json:
            kwargs["json"] = request.json_body
        elif request.content is not None:
            kwargs["content"] = request.content
        async with client.stream(request.method, request.url, **kwargs) as response:
            raw = bytearray()
            truncated = False
            async for chunk in response.aiter_bytes():
                raw.extend(chunk)
                if len(raw) > MAX_BODY_BYTES:
                    del raw[MAX_BODY_BYTES:]
                    truncated = True
                    break
            elapsed_ms = round((time.perf_counter() - started) * 1000)
        return _Response(
            status=response.status_code,
            reason=response.reason_phrase,
            headers=dict(response.headers.items()),
            body=_decode_body(response, bytes(raw), truncated),
            truncated=truncated,
            elapsed_ms=elapsed_ms,
            redirects=tuple((r.status_code, public_url(r.url)) for r in response.history),
        )


def _decode_body(response: httpx.Response, raw: bytes, truncated: bool) -> Any:
    """JSON responses become data; everything else (or a cut-off JSON) stays text."""
    text = raw.decode(response.charset_encoding or "utf-8", errors="replace")
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = content_type == "application/json" or content_type.endswith("+json")
    if is_json and not truncated and text.strip():
        with contextlib.suppress(ValueError):
            return json.loads(text)
    return text


def _result(request: _Request, response: _Response, log: LogSink) -> StepResult:
    for status, url in response.redirects:
        log.write(LogStream.SYSTEM, f"redirect {status} from {url}")
    log.write(
        LogStream.SYSTEM,
        f"response {response.status} {response.reason} in {response.elapsed_ms} ms",
    )
    if response.truncated:
        log.write(
            LogStream.SYSTEM,
            f"the response body is larger than {MAX_BODY_BYTES} bytes; "
            "outputs.body keeps the first part as text",
            LogLevel.WARN,
        )
    outputs = {
        "status": response.status,
        "headers": response.headers,
        "body": response.body,
        "elapsed_ms": response.elapsed_ms,
    }
    ok = response.status in request.expect if request.expect else 200 <= response.status < 300
    if ok:
        return StepResult(JobStatus.COMPLETED, outputs=outputs)
    if request.expect:
        wanted = "status " + " or ".join(str(code) for code in request.expect)
    else:
        wanted = "a 2xx status"
    error = f"expected {wanted}, got {response.status}"
    retryable = response.status >= 500 or response.status in _RETRYABLE_4XX
    log.write(LogStream.SYSTEM, error, LogLevel.ERROR)
    return StepResult(JobStatus.FAILED, outputs=outputs, error=error, retryable=retryable)


def _timed_out(timeout: float, log: LogSink) -> StepResult:
    error = f"timed out after {format_seconds(timeout)}"
    log.write(LogStream.SYSTEM, error, LogLevel.ERROR)
    return StepResult(JobStatus.TIMEOUT, error=error)


def _failed(log: LogSink, error: str, *, retryable: bool) -> StepResult:
    log.write(LogStream.SYSTEM, error, LogLevel.ERROR)
    return StepResult(JobStatus.FAILED, error=error, retryable=retryable)


def _network_failure(
    exc: httpx.HTTPError, url: httpx.URL, timeout: float, log: LogSink
) -> StepResult:
    """The request got no answer: say why in words, and where it was going."""
    cause = cause_of(exc)
    if cause is not None and cause.words == TIMED_OUT:
        return _timed_out(timeout, log)
    if cause is None:
        # No socket-level cause: the server broke the protocol (closed early, bad answer).
        cause = NetworkCause("the server did not answer properly", without_errno(str(exc)))
    where = f"{url.host}:{url.port}" if url.port else url.host
    error = f"{cause.words} ({where})" + (f": {cause.detail}" if cause.detail else "")
    if cause.words == TLS_VERIFICATION_FAILED:
        error += "; set verify_tls: false only for a server you trust"
    return _failed(log, error, retryable=cause.retryable)
