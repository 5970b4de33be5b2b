"""Network failures of http and notify steps say their cause in words, never an errno string:
each cause is produced for real on loopback (a closed port, an unresolvable ``.invalid`` name, a
TLS server with a self-signed certificate, a server that never answers)."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsflow.status import JobStatus, StepType
from opsflow.steps.base import CancelSignal, StepResult
from opsflow.steps.http import HttpExecutor
from opsflow.steps.notify import NotifyExecutor

from .support import LoopbackServer, RecordingSink, Reply, job, self_signed_tls

pytestmark = pytest.mark.anyio

ERRNO = re.compile(r"errno|error -?\d+|\[SSL", re.IGNORECASE)


@dataclass(frozen=True)
class Target:
    """Where a request goes (``http``/``https`` URL) and the words its failure must say."""

    url: str
    words: str
    retryable: bool
    status: JobStatus = JobStatus.FAILED


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackServer]:
    server = LoopbackServer(tls=self_signed_tls(tmp_path_factory.mktemp("tls")))
    server.reply("/hook", Reply(200, b"ok"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def silent_server() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    server.reply("/hook", Reply(hold=True))
    yield server
    server.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


CASES = ["closed port", "unresolvable name", "self-signed certificate", "never answers"]


@pytest.fixture(params=CASES)
def target(
    request: pytest.FixtureRequest, tls_server: LoopbackServer, silent_server: LoopbackServer
) -> Target:
    case: str = request.param
    if case == "closed port":
        port = _closed_port()
        return Target(
            f"http://127.0.0.1:{port}/hook", f"connection refused (127.0.0.1:{port})", True
        )
    if case == "unresolvable name":
        return Target("http://opsflow-test.invalid/hook", "name not resolved", True)
    if case == "self-signed certificate":
        return Target(f"{tls_server.url}/hook", "TLS verification failed", False)
    return Target(f"{silent_server.url}/hook", "timed out after 2s", True, JobStatus.TIMEOUT)


def _check(result: StepResult, sink: RecordingSink, target: Target) -> None:
    assert result.status is target.status, result
    assert result.error is not None and target.words in result.error, result.error
    assert result.retryable is target.retryable
    assert not ERRNO.search(result.error), result.error
    assert not any(ERRNO.search(text) for _, text in sink.lines), sink.lines


async def test_http_step_says_why_the_request_got_no_answer(
    target: Target, workdir: Path, sink: RecordingSink
) -> None:
    spec = job(workdir, StepType.HTTP, {"url": target.url}, timeout=2)
    result = await HttpExecutor().run(spec, sink, CancelSignal())
    _check(result, sink, target)
    if "TLS" in target.words:
        assert "self-signed certificate" in (result.error or "")


async def test_notify_step_says_why_the_channel_got_nothing(
    target: Target, workdir: Path, sink: RecordingSink
) -> None:
    url = target.url.replace("https://", "jsons://").replace("http://", "json://")
    spec = job(workdir, StepType.NOTIFY, {"urls": [url], "message": "hello"}, timeout=2)
    result = await NotifyExecutor().run(spec, sink, CancelSignal())
    if target.status is JobStatus.FAILED:
        target = Target(target.url, "JSON: " + target.words.split(" (")[0], target.retryable)
    _check(result, sink, target)
    if "TLS" in target.words:
        assert "self-signed certificate" in (result.error or "")


class _Kept(logging.Handler):
    """A handler on the root logger, as the server's own log handler is."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_apprise_debug_lines_never_reach_the_server_log(
    workdir: Path, sink: RecordingSink
) -> None:
    """The cause is read from Apprise's DEBUG lines, which name the channel URL and its token;
    the server's own log (handlers on the root logger) still gets Apprise's warnings only."""
    root = logging.getLogger()
    kept, level = _Kept(), root.level
    root.addHandler(kept)
    root.setLevel(logging.DEBUG)
    try:
        url = f"json://deployer:t0ken-s3cret@127.0.0.1:{_closed_port()}/hook"
        spec = job(workdir, StepType.NOTIFY, {"urls": [url], "message": "hello"}, timeout=2)
        result = await NotifyExecutor().run(spec, sink, CancelSignal())
    finally:
        root.removeHandler(kept)
        root.setLevel(level)
    assert result.error is not None and "connection refused" in result.error
    apprise_records = [r for r in kept.records if r.name.startswith("apprise")]
    assert apprise_records, "Apprise's warning should still reach the server log"
    assert all(r.levelno >= logging.WARNING for r in apprise_records), apprise_records
    assert not any("t0ken-s3cret" in r.getMessage() for r in kept.records)
    assert not any("t0ken-s3cret" in text for _, text in sink.lines)
