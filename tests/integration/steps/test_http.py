"""The http executor against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsflow.status import JobStatus, LogLevel, LogStream, StepType
from opsflow.steps.base import CancelSignal, StepResult
from opsflow.steps.http import MAX_BODY_BYTES, HttpExecutor

from .support import LoopbackServer, RecordingSink, Reply, job, self_signed_tls

pytestmark = pytest.mark.anyio

JSON = {"Content-Type": "application/json"}


async def call(
    workdir: Path,
    sink: RecordingSink,
    config: dict[str, Any],
    *,
    timeout: float | None = None,
    cancel: CancelSignal | None = None,
) -> StepResult:
    spec = job(workdir, StepType.HTTP, config, timeout=timeout)
    return await HttpExecutor().run(spec, sink, cancel or CancelSignal())


async def test_json_response_becomes_outputs(
    workdir: Path, sink: RecordingSink, server: LoopbackServer
) -> None:
    server.reply("/health", Reply(200, b'{"ok": true, "version": "1.2"}', JSON))
    result = await call(workdir, sink, {"url": f"{server.url}/health"})
    assert result.status is JobStatus.COMPLETED, result
    assert result.outputs["status"] == 200
    assert result.outputs["body"] == {"ok": True, "version": "1.2"}
    assert result.outputs["headers"]["content-type"] == "application/json"
    assert isinstance(result.outputs["elapsed_ms"], int) and result.outputs["elapsed_ms"] >= 0
    system = sink.text(LogStream.SYSTEM)
    assert system[0] == f"GET {server.url}/health"
    assert system[1].startswith("response 200 OK in ")


async def test_json_body_and_headers_reach_the_server(
    workdir: Path, sink: RecordingSink, server: LoopbackServer
) -> None:
    server.reply("/deploys", Reply(201, b"created"))
    config = {
        "method": "post",
        "url": f"{server.url}/deploys",
        "headers": {"X-Request-Id": "r-1"},
        "json": {"service": "api", "replicas": 3},
        "expect_status": [201],
    }
    result = await call(workdir, sink, config)
    assert result.status is JobStatus.COMPLETED
    assert result.outputs["body"] == "created"
    [request] = server.received
    assert request.method == "POST"
    assert request.headers["X-Request-Id"] == "r-1"
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {"service": "api", "replicas": 3}


async def test_text_body_is_sent_as_given(
    workdir: Path, sink: RecordingSink, server: LoopbackServer
) -> None:
    server.reply("/raw", Reply(204))
    body = "line 1\n{{ not a template }}"
    result = await call(workdir, sink, {"method": "PUT", "url": f"{server.url}/raw", "body": body})
    assert result.status is JobStatus.COMPLETED
    assert server.received[0].body == body.encode()


@pytest.mark.parametrize(
    ("status", "expect", "error", "retryable"),
    [
        (503, None, "expected a 2xx status, got 503", True),
        (503, [200], "expected status 200, got 503", True),
        (429, None, "expected a 2xx status, got 429", True),
        (404, None, "expected a 2xx status, got 404", False),
        (200, [201, 202], "expected status 201 or 202, got 200", False),
    ],
)
async def test_unexpected_status_fails_with_retry_intent(
    workdir: Path,
    sink: RecordingSink,
    server: LoopbackServer,
    status: int,
    expect: list[int] | None,
    error: str,
    retryable: bool,
) -> None:
    server.reply("/svc", Reply(status, b'{"error": "busy"}', JSON))
    config: dict[str, Any] = {"url": f"{server.url}/svc", "expect_status": expect}
    result = await call(workdir, sink, config)
    assert result.status is JobStatus.FAILED
    assert result.error == error
    assert result.retryable is retryable
    assert result.outputs["status"] == status  # a .failed handler can read the response
    assert result.outputs["body"] == {"error": "busy"}
    # the request and response lines are progress; the line saying why it failed is an error
    assert sink.levels[f"GET {server.url}/svc"] is None  # the default: stored as info
    assert sink.levels[error] is LogLevel.ERROR


async def test_listed_non_2xx_status_is_success(
    workdir: Path, sink: RecordingSink, server: LoopbackServer
) -> None:
    server.reply("/gone", Reply(404, b"not here"))
    result = await call(workdir, sink, {"url": f"{server.url}/gone", "expect_status": 404})
    assert result.status is JobStatus.COMPLETED
    assert result.outputs["status"] == 404


async def test_redirects_are_followed_by_default(
    workdir: Path, sink: RecordingSink, server: LoopbackServer
) -> None:
    server.reply("/old", Reply(302, headers={"Location": "/new"}))
    server.reply("/new", Reply(200, b"moved here"))
    result = await call(workdir, sink, {"url": f"{server.url}/old"})
    assert result.status is JobStatus.COMPLETED
    assert result.outputs["body"] == "moved here"
    assert f"redirect 302 from {server.url}/old" in sink.text(LogStream.SYSTEM)


async def test_redirects_are_returned_when_following_is_off(
    workdir: Path, sink: RecordingSink, server: LoopbackServer
) -> None:
    server.reply("/old", Reply(302, headers={"Location": "/new"}))
    config: dict[str, Any] = {"url": f"{server.url}/old", "follow_redirects": False}
    result = await call(workdir, sink, config)
    assert result.status is JobStatus.FAILED
    assert result.error == "expected a 2xx status, got 302"
    assert result.retryable is False
    result = await call(workdir, sink, {**config, "expect_status": [302]})
    assert result.status is JobStatus.COMPLETED
    assert result.outputs["headers"]["location"] == "/new"
    assert [r.path for r in server.received] == ["/old", "/old"]


async def test_slow_server_times_out(
    workdir: Path, sink: RecordingSink, server: LoopbackServer
) -> None:
    server.reply("/slow", Reply(hold=True))
    result = await call(workdir, sink, {"url": f"{server.url}/slow"}, timeout=0.3)
    assert result.status is JobStatus.TIMEOUT
    assert result.error == "timed out after 0.3s"
    assert result.retryable is True


async def test_cancel_stops_a_request_in_flight(
    workdir: Path, sink: RecordingSink, server: LoopbackServer
) -> None:
    server.reply("/slow", Reply(hold=True))
    cancel = CancelSignal()
    task = asyncio.create_task(call(workdir, sink, {"url": f"{server.url}/slow"}, cancel=cancel))
    await asyncio.to_thread(server.wait_for_requests, 1)
    cancel.request(force=False)
    result = await task
    assert result.status is JobStatus.CANCELLED
    assert result.retryable is False


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    yield port


async def test_connection_refused_fails_and_may_be_retried(
    workdir: Path, sink: RecordingSink, closed_port: int
) -> None:
    result = await call(workdir, sink, {"url": f"http://127.0.0.1:{closed_port}/"})
    assert result.status is JobStatus.FAILED
    assert result.error == f"connection refused (127.0.0.1:{closed_port})"
    assert result.retryable is True
    assert sink.levels[result.error] is LogLevel.ERROR


async def test_credentials_in_the_url_are_sent_but_never_logged(
    workdir: Path, sink: RecordingSink, server: LoopbackServer
) -> None:
    server.reply("/private", Reply(200, b"ok"))
    url = f"http://deployer:s3cr3t@127.0.0.1:{server.port}/private"
    result = await call(workdir, sink, {"url": url})
    assert result.status is JobStatus.COMPLETED
    assert server.received[0].headers["Authorization"].startswith("Basic ")
    assert all("s3cr3t" not in text for _, text in sink.lines)
    assert sink.text(LogStream.SYSTEM)[0] == f"GET {server.url}/private"


async def test_large_body_is_capped_with_a_note(
    workdir: Path, sink: RecordingSink, server: LoopbackServer
) -> None:
    big = b"[" + b"1," * (MAX_BODY_BYTES // 2) + b"1]"
    server.reply("/big", Reply(200, big, JSON))
    result = await call(workdir, sink, {"url": f"{server.url}/big"})
    assert result.status is JobStatus.COMPLETED
    assert result.outputs["body"] == big[:MAX_BODY_BYTES].decode()
    assert any("larger than" in line for line in sink.text(LogStream.SYSTEM))


async def test_body_labelled_json_that_is_not_json_stays_text(
    workdir: Path, sink: RecordingSink, server: LoopbackServer
) -> None:
    server.reply("/broken", Reply(200, b"<html>oops</html>", {"Content-Type": "application/json"}))
    server.reply(
        "/problem",
        Reply(200, json.dumps({"a": 1}).encode(), {"Content-Type": "application/problem+json"}),
    )
    broken = await call(workdir, sink, {"url": f"{server.url}/broken"})
    problem = await call(workdir, sink, {"url": f"{server.url}/problem"})
    assert broken.outputs["body"] == "<html>oops</html>"
    assert problem.outputs["body"] == {"a": 1}


async def test_tls_verification_can_be_switched_off(
    workdir: Path, sink: RecordingSink, tmp_path: Path
) -> None:
    server = LoopbackServer(tls=self_signed_tls(tmp_path))
    try:
        server.reply("/secure", Reply(200, b"hello over tls"))
        url = f"{server.url}/secure"
        refused = await call(workdir, sink, {"url": url})
        assert refused.status is JobStatus.FAILED
        assert refused.error is not None
        assert refused.error.startswith(
            f"TLS verification failed (127.0.0.1:{server.port}): self-signed certificate"
        )
        assert refused.retryable is False
        accepted = await call(workdir, sink, {"url": url, "verify_tls": False})
        assert accepted.status is JobStatus.COMPLETED, accepted
        assert accepted.outputs["body"] == "hello over tls"
    finally:
        server.close()


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({}, "url: is required"),
        ({"url": "ftp://example.com/file"}, "url: must be an absolute http:// or https:// URL"),
        ({"url": "/relative"}, "url: must be an absolute"),
        ({"url": "http://x", "method": "FETCH"}, "method: 'FETCH' is not supported"),
        ({"url": "http://x", "body": "a", "json": {}}, "body: give either `body` or `json`"),
        ({"url": "http://x", "body": {"a": 1}}, "body: must be text; use `json`"),
        ({"url": "http://x", "expect_status": ["ok"]}, "expect_status[0]: must be an HTTP status"),
        ({"url": "http://x", "follow_redirects": "yes"}, "follow_redirects: must be true or false"),
    ],
)
async def test_bad_configuration_fails_without_retry_naming_the_field(
    workdir: Path, sink: RecordingSink, config: dict[str, Any], error: str
) -> None:
    result = await call(workdir, sink, config)
    assert result.status is JobStatus.FAILED
    assert result.retryable is False
    assert result.error is not None and result.error.startswith(error)


async def test_the_servers_timeout_stop_ends_the_request_as_timed_out(
    workdir: Path, sink: RecordingSink, server: LoopbackServer
) -> None:
    """The server's clock passed the step's timeout first: a timeout, retryable, not a cancel."""
    server.reply("/slow", Reply(hold=True))
    cancel = CancelSignal()
    task = asyncio.create_task(
        call(workdir, sink, {"url": f"{server.url}/slow"}, timeout=2, cancel=cancel)
    )
    await asyncio.to_thread(server.wait_for_requests, 1)
    cancel.time_out()
    result = await task
    assert (result.status, result.error, result.retryable) == (
        JobStatus.TIMEOUT,
        "timed out after 2s",
        True,
    )
