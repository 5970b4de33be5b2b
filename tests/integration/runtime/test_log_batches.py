"""Log batches through the runtime: bulk-written in order, refused whole when over the limits."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from opsflow.agent.protocol import JobRef, JobReport, LogBatch
from opsflow.errors import InvalidInput, StaleReport
from opsflow.runtime.agent_service import _one_write
from opsflow.runtime.bus import EventBus
from opsflow.runtime.service import RunRequest, Runtime
from opsflow.spec.loader import canonical, load_workflow
from opsflow.status import JobStatus, LogStream
from opsflow.store import jobs as jobs_store
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


THREE_STEPS = """
id: three
steps:
  - {id: a, type: script, run: "true"}
  - {id: b, type: script, run: "true"}
  - {id: c, type: script, run: "true"}
"""


def _ref(job: Job, token: str | None = None) -> JobRef:
    return JobRef(job_id=job.id, lease_token=token or job.lease_token or "", epoch=job.lease_epoch)


def test_reports_and_batches_of_several_jobs_go_in_one_write_each_refused_alone(
    database: Database,
) -> None:
    """One transaction stores a job's end and other jobs' lines; a batch over the limits and
    one under a stale lease are refused on their own, writing nothing, and the rest is kept."""
    runtime = Runtime(database, EventBus())
    wf = load_workflow(THREE_STEPS)
    execution_id = runtime.start_execution(
        RunRequest(workflow_id=wf.id, definition=canonical(wf), params={})
    )
    a, b, c = sorted(
        runtime.claim(agent_id="a1", pools=["default"], labels={}, limit=3),
        key=lambda job: job.step_id,
    )
    now = time.time()
    report = JobReport(
        job=_ref(a),
        status=JobStatus.COMPLETED,
        lines=[LogLine(1, now, LogStream.STDOUT, "a's last line")],
    )
    good = LogBatch(job=_ref(b), lines=[LogLine(1, now, LogStream.STDOUT, "b says")])
    big = LogBatch(
        job=_ref(c),
        lines=[LogLine(n, now, LogStream.STDOUT, "c") for n in range(1, MAX_BATCH_LINES + 2)],
    )
    stale = LogBatch(
        job=_ref(c, token="not-the-lease"), lines=[LogLine(1, now, LogStream.STDOUT, "forged")]
    )
    refused_reports, refused_batches = runtime.jobs.write([report], [good, big, stale])
    assert refused_reports == [None]
    assert refused_batches[0] is None
    assert isinstance(refused_batches[1], InvalidInput)
    assert isinstance(refused_batches[2], StaleReport)
    with database.read() as s:
        texts = {(r["step_id"], r["text"]) for r in logs_store.query(s, execution_id)}
        ended = {job.step_id: job.status for job in jobs_store.jobs_of_execution(s, execution_id)}
    assert texts == {("a", "a's last line"), ("b", "b says")}
    assert ended["a"] == JobStatus.COMPLETED
    assert not JobStatus(ended["b"]).terminal and not JobStatus(ended["c"]).terminal
    # A batch after its job's end is refused: the job is no longer in flight.
    (late,) = runtime.jobs.write([], [LogBatch(job=_ref(a), lines=report.lines)])[1]
    assert isinstance(late, StaleReport)


def test_a_write_ends_before_the_report_of_a_job_whose_lines_wait_in_it() -> None:
    """Batches are stored after the reports of their write: a job's report that came after a
    batch of the same job waits for the next write, so its lines are stored before its end."""
    loop = asyncio.new_event_loop()
    try:
        refs = [JobRef(job_id=name, lease_token="t", epoch=1) for name in ("j1", "j2", "j3")]
        items: list[JobReport | LogBatch] = [
            LogBatch(job=refs[0], lines=[]),
            JobReport(job=refs[1], status=JobStatus.COMPLETED),
            LogBatch(job=refs[2], lines=[]),
            JobReport(job=refs[0], status=JobStatus.COMPLETED),
            JobReport(job=refs[2], status=JobStatus.FAILED),
        ]
        waiting = [(item, loop.create_future()) for item in items]
        first, rest = _one_write(waiting)
        assert [item for item, _ in first] == items[:3]
        assert [item for item, _ in rest] == items[3:]
        again, left = _one_write(rest)
        assert [item for item, _ in again] == items[3:]
        assert left == []
    finally:
        loop.close()


def test_an_end_report_stores_its_lines_after_a_batch_committed_while_it_waited(
    database: Database,
) -> None:
    """The end records its lines' last seq in the statement that ends the job (on
    PostgreSQL): a batch of the same job still open when the report comes is waited for, and
    the report then stores only the lines that batch did not (none twice), the seq left at
    the report's last."""
    runtime, execution_id, job = _runtime_with_job(database)
    now = time.time()
    ref = _ref(job)
    batch = [LogLine(n, now, LogStream.STDOUT, f"line {n}") for n in range(1, 6)]
    ending = [LogLine(n, now, LogStream.STDOUT, f"line {n}") for n in range(3, 8)]
    with ThreadPoolExecutor(1) as pool:
        with database.session() as open_batch:  # the batch's transaction, not yet committed
            logs_store.append(
                open_batch,
                job_id=job.id,
                token=ref.lease_token,
                execution_id=execution_id,
                step_id="work",
                lines=batch,
            )
            report = pool.submit(
                runtime.finish_job,
                JobReport(job=ref, status=JobStatus.COMPLETED, exit_code=0, lines=ending),
            )
            time.sleep(0.3)
            assert not report.done()  # waits for the batch's row lock (or SQLite's writer)
        report.result(timeout=30)
    with database.read() as s:
        rows = logs_store.query(s, execution_id)
        (stored,) = jobs_store.jobs_of_execution(s, execution_id)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5, 6, 7]
    assert stored.last_seq == 7 and stored.status == JobStatus.COMPLETED
