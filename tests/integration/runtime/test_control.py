"""Leases, stale reports, log gaps, cancel and concurrency, through the real runtime."""

from __future__ import annotations

import asyncio
import time

import pytest

from opsflow.agent.protocol import JobRef, JobReport
from opsflow.engine.model import CancelMode
from opsflow.errors import StaleReport
from opsflow.runtime.bus import EventBus
from opsflow.runtime.service import RunRequest, Runtime
from opsflow.spec.loader import canonical, load_workflow
from opsflow.status import ExecutionStatus, JobStatus, LogStream, StepStatus
from opsflow.store import jobs as jobs_store
from opsflow.store import logs as logs_store
from opsflow.store import runs as runs_store
from opsflow.store.db import Database
from opsflow.store.logs import LogLine

from .conftest import Harness


def _ref(job: jobs_store.Job, token: str | None = None) -> JobRef:
    """How an agent names ``job``: its id, lease token (or another) and epoch."""
    return JobRef(job_id=job.id, lease_token=token or job.lease_token or "", epoch=job.lease_epoch)


def _request(yaml_text: str) -> RunRequest:
    wf = load_workflow(yaml_text)
    return RunRequest(workflow_id=wf.id, definition=canonical(wf), params={})


ONE_STEP = """
id: one
steps:
  - {id: work, type: script, run: "true", retries: 1}
"""


def test_expired_lease_fails_the_attempt_and_a_stale_report_is_refused(database: Database) -> None:
    runtime = Runtime(database, EventBus(), lease_seconds=0.2)
    execution_id = runtime.start_execution(_request(ONE_STEP))
    (job,) = runtime.claim(agent_id="a1", pools=["default"], labels={}, limit=5)
    assert job.lease_token is not None
    runtime.start_job(_ref(job))
    deadline = time.monotonic() + 5
    while runtime.expire_leases() == 0:
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.05)
    with database.session() as s:
        attempts = jobs_store.jobs_of_execution(s, execution_id)
    assert attempts[0].status == JobStatus.FAILED
    assert "agent lost" in (attempts[0].error or "")
    assert attempts[1].attempt == 2 and attempts[1].status == JobStatus.PENDING

    # The presumed-dead agent comes back: neither its heartbeat nor its report is accepted.
    with pytest.raises(StaleReport):
        runtime.heartbeat(_ref(job))
    with pytest.raises(StaleReport):
        runtime.finish_job(JobReport(job=_ref(job), status=JobStatus.COMPLETED))

    # The successor's report counts.
    (retry,) = runtime.claim(agent_id="a2", pools=["default"], labels={}, limit=5)
    assert retry.lease_token is not None and retry.attempt == 2
    with pytest.raises(StaleReport):
        runtime.finish_job(JobReport(job=_ref(retry, job.lease_token), status=JobStatus.FAILED))
    runtime.finish_job(JobReport(job=_ref(retry), status=JobStatus.COMPLETED))
    with database.session() as s:
        assert runs_store.get_execution(s, execution_id).status == ExecutionStatus.COMPLETED


def test_lost_log_lines_show_as_a_visible_gap(database: Database) -> None:
    runtime = Runtime(database, EventBus())
    execution_id = runtime.start_execution(_request(ONE_STEP))
    (job,) = runtime.claim(agent_id="a1", pools=["default"], labels={}, limit=1)
    assert job.lease_token is not None
    now = time.time()
    runtime.append_logs(
        _ref(job),
        [LogLine(1, now, LogStream.STDOUT, "one"), LogLine(2, now, LogStream.STDOUT, "two")],
    )
    # Lines 3..4 never arrive; 5 does, and a resent 2 is not stored twice.
    runtime.append_logs(
        _ref(job),
        [LogLine(2, now, LogStream.STDOUT, "two"), LogLine(5, now, LogStream.STDOUT, "five")],
    )
    with database.session() as s:
        lines = logs_store.query(s, execution_id)
    texts = [line["text"] for line in lines]
    assert texts[0:2] == ["one", "two"]
    assert "log lines 3..4 were lost in transit" in texts[2]
    assert texts[3] == "five"
    assert [line["seq"] for line in lines] == [1, 2, 3, 5]


def test_a_foreign_agent_cannot_write_logs(database: Database) -> None:
    runtime = Runtime(database, EventBus())
    runtime.start_execution(_request(ONE_STEP))
    (job,) = runtime.claim(agent_id="a1", pools=["default"], labels={}, limit=1)
    with pytest.raises(StaleReport):
        runtime.append_logs(
            _ref(job, "not-the-token"), [LogLine(1, time.time(), LogStream.STDOUT, "x")]
        )


@pytest.mark.anyio
async def test_force_cancel_terminates_a_running_job(harness: Harness) -> None:
    eid = await harness.start_async(
        """
id: long
steps:
  - {id: sleepy, type: script, shell: sh, run: "sleep 30"}
  - {id: after, type: script, needs: [sleepy], run: "true"}
"""
    )
    await harness.wait(
        eid, until=lambda ex: any(j.status == JobStatus.RUNNING for j in harness.jobs(eid))
    )
    started = time.monotonic()
    await asyncio.to_thread(harness.runtime.cancel, eid, mode=CancelMode.FORCE, by="alice")
    ex = await harness.wait(eid, timeout=15)
    assert time.monotonic() - started < 10
    assert ex.status == ExecutionStatus.CANCELLED
    (job,) = harness.jobs(eid)
    assert job.status == JobStatus.CANCELLED
    steps = harness.steps(eid)
    assert steps["after"].status == StepStatus.CANCELLED


@pytest.mark.anyio
async def test_graceful_cancel_lets_the_running_job_finish(harness: Harness) -> None:
    eid = await harness.start_async(
        """
id: graceful
steps:
  - {id: short, type: script, shell: sh, run: "sleep 0.5; echo finished"}
  - {id: after, type: script, needs: [short], run: "true"}
"""
    )
    await harness.wait(
        eid, until=lambda ex: any(j.status == JobStatus.RUNNING for j in harness.jobs(eid))
    )
    await asyncio.to_thread(harness.runtime.cancel, eid, mode=CancelMode.GRACEFUL, by="alice")
    ex = await harness.wait(eid, timeout=15)
    assert ex.status == ExecutionStatus.CANCELLED
    (job,) = harness.jobs(eid)
    assert job.status == JobStatus.COMPLETED
    assert harness.steps(eid)["after"].status == StepStatus.CANCELLED


QUEUED = """
id: serial
concurrency: {limit: 1, policy: %s}
steps:
  - {id: hold, type: script, shell: sh, run: "sleep 0.4"}
"""


@pytest.mark.anyio
async def test_concurrency_queue_runs_one_at_a_time(harness: Harness) -> None:
    first = await harness.start_async(QUEUED % "queue")
    second = await harness.start_async(QUEUED % "queue")
    assert harness.execution(second).status == ExecutionStatus.PENDING
    assert "queue" in harness.execution(second).status_reason
    a = await harness.wait(first)
    b = await harness.wait(second)
    assert a.status == b.status == ExecutionStatus.COMPLETED
    assert b.started_at is not None and a.ended_at is not None and b.started_at >= a.ended_at


@pytest.mark.anyio
async def test_concurrency_skip_and_cancel_running(harness: Harness) -> None:
    first = await harness.start_async(QUEUED % "skip")
    skipped = await harness.start_async(QUEUED % "skip")
    ex = harness.execution(skipped)
    assert ex.status == ExecutionStatus.CANCELLED and "skip" in ex.status_reason
    await harness.wait(first)

    older = await harness.start_async(QUEUED % "cancel-running")
    newer = await harness.start_async(QUEUED % "cancel-running")
    assert (await harness.wait(older)).status == ExecutionStatus.CANCELLED
    assert (await harness.wait(newer)).status == ExecutionStatus.COMPLETED
