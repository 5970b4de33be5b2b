"""A step's timeout is a failure its retry policy decides on, for every step type that runs on
an agent: each attempt ends ``timeout`` with "timed out after 2s", and its processes get SIGTERM,
then SIGKILL once the stop grace is over (configurable, 5 s by default as documented)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from opsflow.auth.connections import ConnectionVault
from opsflow.auth.secrets import SecretBox
from opsflow.engine.model import CancelMode
from opsflow.runtime.host import RuntimeHost
from opsflow.status import ExecutionStatus, JobStatus, StepStatus
from opsflow.store import logs as logs_store
from opsflow.store.db import Database
from tests.integration.steps.support import LoopbackServer, Reply

from .conftest import Harness

pytestmark = pytest.mark.anyio

GRACE = 1.0  # the stop grace these runs use; the default (5 s) is tested on the executor


@pytest.fixture
async def short_grace(database: Database, tmp_path: Path) -> AsyncIterator[Harness]:
    host = RuntimeHost(
        database,
        work_dir=tmp_path / "work",
        concurrency=2,
        lease_seconds=5.0,
        heartbeat_interval=1.0,
        stop_grace=GRACE,
    )
    await host.start()
    try:
        yield Harness(host)
    finally:
        await host.stop()


def _lines(harness: Harness, execution_id: str, job_id: str) -> list[dict[str, Any]]:
    with harness.runtime.db.read() as session:
        rows = logs_store.query(session, execution_id, limit=10_000)
    return [row for row in rows if row["job_id"] == job_id]


STUBBORN = """
id: stubborn
steps:
  - id: hang
    type: script
    shell: bash
    timeout: 2s
    retries: 2
    run: |
      trap 'echo "got TERM, ignoring it"' TERM
      echo started
      while true; do sleep 0.05 || true; done
"""


async def test_timed_out_script_is_retried_and_each_attempt_is_killed_after_the_grace(
    short_grace: Harness,
) -> None:
    harness = short_grace
    eid = await harness.start_async(STUBBORN)
    ex = await harness.wait(eid, timeout=60)
    assert ex.status == ExecutionStatus.FAILED, harness.engine_log(eid)
    jobs = harness.jobs(eid)
    assert [j.attempt for j in jobs] == [1, 2, 3], harness.engine_log(eid)
    for job in jobs:
        assert job.status == JobStatus.TIMEOUT
        assert job.error == "timed out after 2s"
        assert job.retryable
        assert job.started_at is not None and job.ended_at is not None
        # Two seconds of work, then the whole grace: the script traps SIGTERM and goes on.
        assert job.ended_at - job.started_at >= 2 + GRACE - 0.1
        texts = [row["text"] for row in _lines(harness, eid, job.id)]
        assert "got TERM, ignoring it" in texts, texts
        term = texts.index("got TERM, ignoring it")
        assert any("SIGKILL" in t for t in texts[term:]), texts
        assert any(f"SIGKILL after {GRACE:g}s" in t for t in texts), texts
    step = harness.steps(eid)["hang"]
    assert step.status == StepStatus.FAILED
    log = "\n".join(harness.engine_log(eid))
    assert "attempt 3 timed out: timed out after 2s (after 3 attempts)" in log, log
    assert "not retryable" not in log and "forced" not in log, log


HANGING_HTTP = """
id: hanging-http
params: {url: {type: string}}
steps:
  - {id: call, type: http, url: "{{ params.url }}", timeout: 2s, retries: 2}
"""


async def test_timed_out_http_request_is_retried_like_a_failure(short_grace: Harness) -> None:
    server = LoopbackServer()
    server.reply("/never", Reply(hold=True))
    try:
        eid = await short_grace.start_async(HANGING_HTTP, {"url": f"{server.url}/never"})
        ex = await short_grace.wait(eid, timeout=40)
    finally:
        server.close()
    assert ex.status == ExecutionStatus.FAILED
    jobs = short_grace.jobs(eid)
    assert [(j.attempt, j.status, j.error, j.retryable) for j in jobs] == [
        (n, JobStatus.TIMEOUT, "timed out after 2s", True) for n in (1, 2, 3)
    ], short_grace.engine_log(eid)
    assert len(server.received) == 3


async def test_forced_cancel_cuts_a_timed_out_job_grace_short(harness: Harness) -> None:
    """The default grace is 5 s; a forced cancel during it ends the job at once."""
    eid = await harness.start_async(STUBBORN.replace("retries: 2", "retries: 0"))

    def stopping(ex: Any) -> bool:
        return any(j.cancel_requested for j in harness.jobs(eid))

    await harness.wait(eid, timeout=20, until=stopping)
    await asyncio.to_thread(harness.runtime.cancel, eid, mode=CancelMode.FORCE, by="test")
    ex = await harness.wait(eid, timeout=20)
    (job,) = harness.jobs(eid)
    assert ex.status == ExecutionStatus.CANCELLED
    assert job.started_at is not None and job.ended_at is not None
    assert job.ended_at - job.started_at < 2 + 3.0, "the forced cancel waited out the 5 s grace"


async def test_timed_out_notify_delivery_is_retried_like_a_failure(
    database: Database, tmp_path: Path
) -> None:
    server = LoopbackServer()
    server.reply("/hooks/slow", Reply(hold=True))
    connections = ConnectionVault(database, SecretBox(b"k" * 32))
    # A configured channel, loaded as the server loads OPSFLOW_NOTIFY_SLOW.
    connections.load_channels({"slow": [f"json://127.0.0.1:{server.port}/hooks/slow"]})
    host = RuntimeHost(
        database,
        work_dir=tmp_path / "work",
        concurrency=2,
        lease_seconds=5.0,
        heartbeat_interval=1.0,
        stop_grace=GRACE,
        connections=connections,
    )
    await host.start()
    try:
        harness = Harness(host)
        eid = await harness.start_async(
            "id: slow-notify\nsteps:\n"
            "  - {id: tell, type: notify, channel: slow, message: hi, timeout: 2s, retries: 1}\n"
        )
        ex = await harness.wait(eid, timeout=40)
        jobs = harness.jobs(eid)
    finally:
        server.release.set()
        await host.stop()
        server.close()
    assert ex.status == ExecutionStatus.FAILED
    assert [(j.attempt, j.status, j.error, j.retryable) for j in jobs] == [
        (n, JobStatus.TIMEOUT, "timed out after 2s", True) for n in (1, 2)
    ], harness.engine_log(eid)
    assert len(server.received) == 2
