"""Log batches through the runtime: bulk-written in order, refused whole when over the limits."""

from __future__ import annotations

import time

import pytest

from opsflow.agent.protocol import JobRef
from opsflow.errors import InvalidInput
from opsflow.runtime.bus import EventBus
from opsflow.runtime.service import RunRequest, Runtime
from opsflow.spec.loader import canonical, load_workflow
from opsflow.status import LogStream
from opsflow.store import logs as logs_store
from opsflow.store.db import Database
from opsflow.store.jobs import Job
from opsflow.store.logs import MAX_BATCH_BYTES, MAX_BATCH_LINES, LogLine

ONE_STEP = """
id: one
steps:
  - {id: work, type: script, run: "true"}
"""


def _runtime_with_job(database: Database) -> tuple[Runtime, str, Job]:
    runtime = Runtime(database, EventBus())
    wf = load_workflow(ONE_STEP)
    execution_id = runtime.start_execution(
        RunRequest(workflow_id=wf.id, definition=canonical(wf), params={})
    )
    (job,) = runtime.claim(agent_id="a1", pools=["default"], labels={}, limit=1)
    assert job.lease_token is not None
    return runtime, execution_id, job


def test_a_full_batch_is_stored_in_order_with_every_field(database: Database) -> None:
    runtime, execution_id, job = _runtime_with_job(database)
    now = time.time()
    texts = [f"line {n}\ttab 'quote' \\ back ☃" for n in range(1, MAX_BATCH_LINES + 1)]
    lines = [LogLine(n, now + n, LogStream.STDERR, t) for n, t in enumerate(texts, 1)]
    runtime.append_logs(
        JobRef(job_id=job.id, lease_token=job.lease_token or "", epoch=job.lease_epoch), lines
    )
    with database.read() as s:
        rows = logs_store.query(s, execution_id, limit=MAX_BATCH_LINES + 1)
    assert [r["text"] for r in rows] == texts
    assert [r["seq"] for r in rows] == list(range(1, MAX_BATCH_LINES + 1))
    assert [r["at"] for r in rows] == [now + n for n in range(1, MAX_BATCH_LINES + 1)]
    assert {(r["job_id"], r["step_id"], r["stream"]) for r in rows} == {(job.id, "work", "stderr")}


@pytest.mark.parametrize(
    ("count", "text", "limit"),
    [(MAX_BATCH_LINES + 1, "x", "lines"), (2, "y" * (MAX_BATCH_BYTES // 2), "bytes")],
)
def test_a_batch_over_the_limits_is_refused_whole(
    database: Database, count: int, text: str, limit: str
) -> None:
    runtime, execution_id, job = _runtime_with_job(database)
    now = time.time()
    lines = [LogLine(n, now, LogStream.STDOUT, text) for n in range(1, count + 1)]
    with pytest.raises(InvalidInput, match=f"lines: a log batch holds at most .* {limit}"):
        runtime.append_logs(
            JobRef(job_id=job.id, lease_token=job.lease_token or "", epoch=job.lease_epoch), lines
        )
    with database.read() as s:
        assert logs_store.query(s, execution_id) == []
