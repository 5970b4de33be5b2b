"""The server's own agent's shortcuts on a step's path, and that they keep the rules.

- A claim asked to start its jobs (`ClaimRequest.start`) leases each one without a timeout
  running, with its start time and its "running" event, in the claim's commit; a job with a
  timeout is leased dispatched, and its own start arms the timeout as before.
- An agent claims again as soon as it took a job; when its last claim found nothing more and
  nothing was queued since, that claim waits on the bus instead of running a transaction
  that would find nothing, and still takes the next queued job at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event

from opsflow.agent.protocol import ClaimRequest, JobRef, JobReport, LogLine
from opsflow.errors import StaleReport
from opsflow.runtime.agent_service import AgentService
from opsflow.runtime.service import RunRequest, Runtime
from opsflow.spec.loader import canonical, load_workflow
from opsflow.status import JobStatus, LogStream
from opsflow.store import jobs as jobs_store
from opsflow.store import logs as logs_store
from opsflow.store import runs as runs_store
from opsflow.store.db import Database

TWO = """\
id: two
steps:
  - {id: quick, type: script, shell: sh, run: 'true'}
  - {id: bounded, type: script, shell: sh, run: 'true', timeout: 30s}
"""
CHAIN = """\
id: chain
steps:
  - {id: first, type: script, shell: sh, run: 'true'}
  - {id: second, type: script, shell: sh, run: 'true', needs: [first]}
"""


def _start(runtime: Runtime, yaml_text: str) -> str:
    workflow = load_workflow(yaml_text)
    return runtime.start_execution(
        RunRequest(workflow_id=workflow.id, definition=canonical(workflow), params={})
    )


def _job_statuses(database: Database, execution_id: str) -> list[tuple[str, str]]:
    with database.read() as session:
        events = runs_store.events_after(session, execution_id, 0)
    return [(e["data"]["step"], e["data"]["status"]) for e in events if e["kind"] == "job"]


def test_a_claim_that_starts_leases_a_job_without_timeout_running(database: Database) -> None:
    runtime = Runtime(database)
    execution_id = _start(runtime, TWO)
    jobs = runtime.claim(agent_id="local", pools=["default"], labels={}, limit=2, start=True)
    by_step = {job.step_id: job for job in jobs}
    quick, bounded = by_step["quick"], by_step["bounded"]

    assert quick.status == JobStatus.RUNNING
    assert quick.started_at is not None and quick.started_at == quick.dispatched_at
    # A timeout is armed by the start's reconcile (which locks the execution first): that
    # job is left to its own start.
    assert bounded.status == JobStatus.DISPATCHED and bounded.started_at is None
    assert ("quick", "running") in _job_statuses(database, execution_id)
    assert ("bounded", "running") not in _job_statuses(database, execution_id)
    with database.read() as session:
        assert runs_store.next_timer_due(session) is None  # no timeout armed yet

    assert bounded.lease_token is not None
    ref = JobRef(job_id=bounded.id, lease_token=bounded.lease_token, epoch=bounded.lease_epoch)
    runtime.start_job(ref)
    assert ("bounded", "running") in _job_statuses(database, execution_id)
    with database.read() as session:
        assert runs_store.next_timer_due(session) is not None  # its start armed the timeout

    # The job the claim started is fenced as any other: a report naming another lease is
    # refused, the one naming its own lease ends it.
    assert quick.lease_token is not None
    stale = JobRef(job_id=quick.id, lease_token="0" * 32, epoch=quick.lease_epoch)
    with pytest.raises(StaleReport):
        runtime.finish_job(JobReport(job=stale, status=JobStatus.COMPLETED, exit_code=0))
    own = JobRef(job_id=quick.id, lease_token=quick.lease_token, epoch=quick.lease_epoch)
    runtime.finish_job(JobReport(job=own, status=JobStatus.COMPLETED, exit_code=0))
    assert ("quick", "completed") in _job_statuses(database, execution_id)


def test_a_claim_after_the_queue_ran_dry_waits_without_a_transaction(database: Database) -> None:
    async def scenario() -> None:
        runtime = Runtime(database)
        service = AgentService(runtime.jobs, runtime.bus, lease_seconds=15.0, heartbeat_seconds=5.0)
        claims: list[str] = []

        def on_statement(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            # The claim's read of the queue: pending jobs of the pools, oldest first.
            flat = " ".join(statement.split())
            if "FROM jobs WHERE jobs.status = " in flat and "ORDER BY jobs.created_at" in flat:
                claims.append(flat)

        execution_id = await asyncio.to_thread(_start, runtime, CHAIN)
        request = ClaimRequest(agent_id="local", pools=["default"], limit=4, wait=10, start=True)
        event.listen(database.engine, "before_cursor_execute", on_statement)
        try:
            (first,) = await service.claim(request)
            assert first.step_id == "first" and first.started
            assert len(claims) == 1
            # The agent claims again at once: nothing was queued since its claim found the
            # queue dry, so this one waits on the bus without a transaction.
            waiting = asyncio.create_task(service.claim(request))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            assert len(claims) == 1, "a claim transaction ran with nothing queued"
            # The first job's end queues the second: the waiting claim takes it.
            await service.report(JobReport(job=first.ref, status=JobStatus.COMPLETED, exit_code=0))
            (second,) = await asyncio.wait_for(waiting, 5)
            assert second.step_id == "second" and second.execution_id == execution_id
            assert len(claims) == 2
        finally:
            event.remove(database.engine, "before_cursor_execute", on_statement)

    asyncio.run(scenario())


def test_a_report_of_a_lease_this_process_handed_out_is_fenced_without_a_read(
    database: Database,
) -> None:
    """The end report of a lease this process's claim handed out reads no job row; its
    compare-and-set still refuses a lease that is no longer current, and writes nothing (not
    its log lines either)."""
    runtime = Runtime(database)
    execution_id = _start(runtime, CHAIN)
    (job,) = runtime.claim(agent_id="gone", pools=["default"], labels={}, limit=1, start=True)
    assert job.lease_token is not None
    ref = JobRef(job_id=job.id, lease_token=job.lease_token, epoch=job.lease_epoch)
    # The agent's previous process is declared gone: its attempt fails as "agent lost".
    assert runtime.jobs.declare_lost("gone") == 1
    line = LogLine(seq=1, at=1.0, stream=LogStream.STDOUT, text="too late")
    with pytest.raises(StaleReport, match="already ended"):
        runtime.finish_job(
            JobReport(job=ref, status=JobStatus.COMPLETED, exit_code=0, lines=[line])
        )
    with database.read() as session:
        assert logs_store.query(session, execution_id, text="too late") == []
        (ended,) = [
            j for j in jobs_store.jobs_of_execution(session, execution_id) if j.id == job.id
        ]
    assert ended.status == JobStatus.FAILED
