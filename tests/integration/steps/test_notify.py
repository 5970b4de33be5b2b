"""The notify executor end to end: real Apprise plugins posting to a server on 127.0.0.1.

Slack's incoming-webhook endpoint cannot be reached here, so the Slack plugin's webhook base URL
is pointed at the loopback server (the network boundary); everything else, including the JSON
body Slack would receive, is Apprise's own.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from apprise.plugins.slack import NotifySlack

from opsflow.status import JobStatus, LogStream, StepType
from opsflow.steps.base import CancelSignal, StepResult
from opsflow.steps.notify import NotifyExecutor

from .support import LoopbackServer, RecordingSink, Reply, job

pytestmark = pytest.mark.anyio

SLACK_TOKENS = "T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"


async def notify(
    workdir: Path,
    sink: RecordingSink,
    config: dict[str, Any],
    *,
    timeout: float | None = 10,
    cancel: CancelSignal | None = None,
) -> StepResult:
    spec = job(workdir, StepType.NOTIFY, config, timeout=timeout)
    return await NotifyExecutor().run(spec, sink, cancel or CancelSignal())


@pytest.fixture
def slack_at(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> LoopbackServer:
    """Slack's webhook base URL redirected to the loopback server."""
    monkeypatch.setattr(NotifySlack, "webhook_url", f"{server.url}/services")
    return server


async def test_slack_channel_receives_a_real_incoming_webhook_post(
    workdir: Path, sink: RecordingSink, slack_at: LoopbackServer
) -> None:
    slack_at.reply(f"/services/{SLACK_TOKENS}", Reply(200, b"ok"))
    config = {
        "urls": [f"slack://{SLACK_TOKENS}"],
        "title": "Deploy finished",
        "message": "api 1.4.2 is live in production",
    }
    result = await notify(workdir, sink, config)
    assert result.status is JobStatus.COMPLETED, result
    assert result.outputs == {"delivered": 1}
    [request] = slack_at.received
    assert request.method == "POST"
    assert request.headers["Content-Type"].startswith("application/json")
    payload = request.json()
    [attachment] = payload["attachments"]
    assert attachment["title"] == "Deploy finished"
    assert attachment["text"] == "api 1.4.2 is live in production"
    assert attachment["footer"] == "opsflow"
    assert "Slack: delivered" in sink.text(LogStream.SYSTEM)
    assert all(SLACK_TOKENS not in text for _, text in sink.lines)


async def test_slack_block_kit_payload_carries_the_message(
    workdir: Path, sink: RecordingSink, slack_at: LoopbackServer
) -> None:
    slack_at.reply(f"/services/{SLACK_TOKENS}", Reply(200, b"ok"))
    config = {"urls": [f"slack://{SLACK_TOKENS}/?blocks=yes"], "message": "rollback done"}
    result = await notify(workdir, sink, config)
    assert result.status is JobStatus.COMPLETED, result
    blocks = slack_at.received[0].json()["attachments"][0]["blocks"]
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert texts == ["rollback done"]


async def test_generic_json_webhook_receives_title_and_message(
    workdir: Path, sink: RecordingSink, server: LoopbackServer
) -> None:
    server.reply("/hooks/ops", Reply(200, b"{}"))
    config = {
        "urls": [f"json://127.0.0.1:{server.port}/hooks/ops"],
        "title": "Nightly backup",
        "message": "3 databases backed up",
    }
    result = await notify(workdir, sink, config)
    assert result.status is JobStatus.COMPLETED, result
    [request] = server.received
    body = request.json()
    assert body["title"] == "Nightly backup"
    assert body["message"] == "3 databases backed up"
    assert body["type"] == "info"


async def test_server_error_fails_the_step_with_apprise_reason(
    workdir: Path, sink: RecordingSink, server: LoopbackServer
) -> None:
    server.reply("/hooks/ok", Reply(200, b"{}"))
    server.reply("/hooks/broken", Reply(500, b"boom"))
    config = {
        "urls": [
            f"json://127.0.0.1:{server.port}/hooks/ok",
            f"json://127.0.0.1:{server.port}/hooks/broken",
        ],
        "message": "hello",
    }
    result = await notify(workdir, sink, config)
    assert result.status is JobStatus.FAILED
    assert result.retryable is True
    assert result.outputs == {"delivered": 1}
    assert result.error is not None
    assert result.error.startswith("notification failed for 1 of 2 channel URLs: JSON: ")
    assert "500" in result.error
    assert sorted(r.path for r in server.received) == ["/hooks/broken", "/hooks/ok"]


async def test_unreachable_channel_fails_with_the_reason(
    workdir: Path, sink: RecordingSink, server: LoopbackServer
) -> None:
    port = server.port
    server.close()
    result = await notify(workdir, sink, {"urls": [f"json://127.0.0.1:{port}/"], "message": "x"})
    assert result.status is JobStatus.FAILED
    assert result.error is not None and "Connection error" in result.error


async def test_cancel_stops_waiting_for_a_slow_channel(
    workdir: Path, sink: RecordingSink, server: LoopbackServer
) -> None:
    server.reply("/hooks/slow", Reply(hold=True))
    cancel = CancelSignal()
    config = {"urls": [f"json://127.0.0.1:{server.port}/hooks/slow"], "message": "x"}
    task = asyncio.create_task(notify(workdir, sink, config, cancel=cancel))
    await asyncio.to_thread(server.wait_for_requests, 1)
    cancel.request(force=True)
    result = await task
    assert result.status is JobStatus.CANCELLED
    server.release.set()  # let Apprise's abandoned worker thread end now, not at its timeout


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"message": "x"}, "urls: is required"),
        ({"urls": [], "message": "x"}, "urls: must list at least one entry"),
        ({"urls": ["json://127.0.0.1/"]}, "message: is required"),
        ({"urls": ["nosuch://token@host"], "message": "x"}, "urls[0]: is not a valid Apprise URL"),
    ],
)
async def test_bad_configuration_fails_without_retry_naming_the_field(
    workdir: Path, sink: RecordingSink, config: dict[str, Any], error: str
) -> None:
    result = await notify(workdir, sink, config)
    assert result.status is JobStatus.FAILED
    assert result.retryable is False
    assert result.error is not None and result.error.startswith(error)
    assert all("token@host" not in text for _, text in sink.lines)


async def test_channel_that_does_not_answer_times_out(
    workdir: Path, sink: RecordingSink, server: LoopbackServer
) -> None:
    server.reply("/hooks/slow", Reply(hold=True))
    config = {"urls": [f"json://127.0.0.1:{server.port}/hooks/slow"], "message": "x"}
    result = await notify(workdir, sink, config, timeout=0.5)
    assert result.status is JobStatus.TIMEOUT
    assert result.error == "timed out after 0.5s"
    server.release.set()


async def test_the_servers_timeout_stop_ends_the_delivery_as_timed_out(
    workdir: Path, sink: RecordingSink, server: LoopbackServer
) -> None:
    """The server's clock passed the step's timeout first: a timeout, retryable, not a cancel."""
    server.reply("/hooks/slow", Reply(hold=True))
    cancel = CancelSignal()
    config = {"urls": [f"json://127.0.0.1:{server.port}/hooks/slow"], "message": "x"}
    task = asyncio.create_task(notify(workdir, sink, config, timeout=2, cancel=cancel))
    await asyncio.to_thread(server.wait_for_requests, 1)
    cancel.time_out()
    result = await task
    assert (result.status, result.error, result.retryable) == (
        JobStatus.TIMEOUT,
        "timed out after 2s",
        True,
    )
    server.release.set()
