"""A chain's next job is leased in its predecessor's report transaction, to the claim that
waits for it in this process (`AgentService` enlists waiting claims, `AgentJobs.write_serving`
leases to them), and the claim's rules still hold there: a claim whose caller gave up has its
jobs handed back, a claim sent again after a lost answer gets the same lease, and a draining
agent or a revoked token is handed nothing.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event

from opsflow.agent.protocol import ClaimedJob, ClaimRequest, JobReport
from opsflow.auth.agent_tokens import issue_agent_token
from opsflow.errors import Unauthorized
from opsflow.runtime.agent_jobs import Served, WaitingClaim, WaitingClaims
from opsflow.runtime.agent_service import AgentService
from opsflow.runtime.service import RunRequest, Runtime
from opsflow.spec.loader import canonical, load_workflow
from opsflow.status import JobStatus
from opsflow.store import agent_tokens as tokens_store
from opsflow.store import agents as agents_store
from opsflow.store import jobs as jobs_store
from opsflow.store.db import Database

CHAIN = """\
id: chain
steps:
  - {id: first, type: script, shell: sh, run: 'true'}
  - {id: second, type: script, shell: sh, run: 'true', needs: [first]}
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _setup(database: Database, clock: Clock | None = None) -> tuple[Runtime, AgentService, str]:
    runtime = Runtime(database, clock=clock) if clock else Runtime(database)
    service = AgentService(runtime.jobs, runtime.bus, lease_seconds=15.0, heartbeat_seconds=5.0)
    workflow = load_workflow(CHAIN)
    execution_id = runtime.start_execution(
        RunRequest(workflow_id=workflow.id, definition=canonical(workflow), params={})
    )
    return runtime, service, execution_id


def _second(database: Database, execution_id: str) -> jobs_store.Job:
    with database.read() as session:
        (job,) = [
            j for j in jobs_store.jobs_of_execution(session, execution_id) if j.step_id == "second"
        ]
    return job


async def _enlisted(service: AgentService) -> None:
    """Until a claim is waiting, enlisted for the writes."""
    for _ in range(500):
        if service._waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the claim never waited")


def test_a_chains_next_job_is_leased_in_its_predecessors_report_transaction(
    database: Database,
) -> None:
    async def scenario() -> None:
        _, service, execution_id = _setup(database)
        request = ClaimRequest(agent_id="local", pools=["default"], limit=4, wait=10, start=True)
        (first,) = await service.claim(request)
        waiting = asyncio.create_task(service.claim(request))
        await _enlisted(service)

        transactions: list[str] = []
        statements: list[str] = []

        def on_begin(conn: Any) -> None:
            transactions.append("begin")

        def on_statement(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            statements.append(" ".join(statement.split()))

        event.listen(database.engine, "begin", on_begin)
        event.listen(database.engine, "before_cursor_execute", on_statement)
        try:
            await service.report(JobReport(job=first.ref, status=JobStatus.COMPLETED, exit_code=0))
            (second,) = await asyncio.wait_for(waiting, 5)
        finally:
            event.remove(database.engine, "begin", on_begin)
            event.remove(database.engine, "before_cursor_execute", on_statement)

        assert second.step_id == "second" and second.started
        # One transaction: the report's, which ended the first job, queued the second and
        # leased it (running: the claim starts it), before the claim answered.
        assert transactions == ["begin"], statements
        leased = [s for s in statements if s.startswith("UPDATE jobs") and "dispatched_at" in s]
        assert len(leased) == 1, statements
        stored = _second(database, execution_id)
        assert stored.status == JobStatus.RUNNING
        assert stored.lease_token == second.lease_token and stored.agent_id == "local"

        # The agent claims again: nothing was queued that the write did not hand out, so it
        # waits without a claim transaction (no empty claim after the write).
        again = asyncio.create_task(service.claim(request))
        await _enlisted(service)
        before = len(transactions)
        event.listen(database.engine, "begin", on_begin)
        try:
            await asyncio.sleep(0.3)
        finally:
            event.remove(database.engine, "begin", on_begin)
        assert len(transactions) == before
        again.cancel()
        with pytest.raises(asyncio.CancelledError):
            await again

    asyncio.run(scenario())


class _Pausing:
    """Runs `AgentJobs.write_serving` and, after its commit, holds its thread until released."""

    def __init__(self, runtime: Runtime) -> None:
        self.write = runtime.jobs.write_serving
        self.committed = threading.Event()
        self.release = threading.Event()
        runtime.jobs.write_serving = self  # type: ignore[method-assign]

    def __call__(
        self,
        reports: list[JobReport],
        batches: list[Any],
        waiting: WaitingClaims | None,
        taken: list[WaitingClaim],
    ) -> tuple[list[Any], list[Any], Served]:
        out = self.write(reports, batches, waiting, taken)
        self.committed.set()
        assert self.release.wait(10)
        return out


def test_a_waiting_claim_cancelled_after_a_write_took_it_hands_its_jobs_back(
    database: Database,
) -> None:
    async def scenario() -> None:
        runtime, service, execution_id = _setup(database)
        request = ClaimRequest(agent_id="local", pools=["default"], limit=4, wait=10, start=True)
        (first,) = await service.claim(request)
        waiting = asyncio.create_task(service.claim(request))
        await _enlisted(service)
        pausing = _Pausing(runtime)
        reporting = asyncio.create_task(
            service.report(JobReport(job=first.ref, status=JobStatus.COMPLETED, exit_code=0))
        )
        assert await asyncio.to_thread(pausing.committed.wait, 10)
        # Committed: the second job is leased to the claim, whose agent now stops.
        assert _second(database, execution_id).status == JobStatus.RUNNING
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        pausing.release.set()
        await reporting
        for _ in range(500):
            if _second(database, execution_id).status == JobStatus.PENDING:
                break
            await asyncio.sleep(0.01)
        handed_back = _second(database, execution_id)
        assert handed_back.status == JobStatus.PENDING and handed_back.agent_id is None
        # Another agent takes it.
        other = ClaimRequest(agent_id="other", pools=["default"], limit=1, wait=0)
        (taken,) = await service.claim(other)
        assert taken.job_id == handed_back.id

    asyncio.run(scenario())


def test_a_claim_resent_after_a_lost_answer_gets_what_a_write_leased_to_it(
    database: Database,
) -> None:
    async def scenario() -> None:
        runtime, service, execution_id = _setup(database)
        runtime.jobs.register(
            agent_id="remote", pools=["default"], labels={}, version="1", hostname="h"
        )
        first_claim = ClaimRequest(
            agent_id="remote", pools=["default"], limit=1, wait=0, claim_id="claim-0001"
        )
        (first,) = await service.claim(first_claim)
        await service.start(first.ref)
        request = ClaimRequest(
            agent_id="remote", pools=["default"], limit=1, wait=10, claim_id="claim-0002"
        )
        waiting = asyncio.create_task(service.claim(request))
        await _enlisted(service)
        begins: list[object] = []
        count = begins.append
        event.listen(database.engine, "begin", count)
        try:
            await service.report(JobReport(job=first.ref, status=JobStatus.COMPLETED, exit_code=0))
            (second,) = await asyncio.wait_for(waiting, 5)
        finally:
            event.remove(database.engine, "begin", count)
        assert len(begins) == 1  # leased by the report's write
        assert second.step_id == "second" and not second.started  # a remote agent starts it
        # Its answer never reached the agent: the same claim sent again gets the same lease.
        resent = request.model_copy(update={"resent": True})
        (again,) = await service.claim(resent)
        assert (again.job_id, again.lease_token, again.epoch) == (
            second.job_id,
            second.lease_token,
            second.epoch,
        )
        assert _second(database, execution_id).claim_id == "claim-0002"

    asyncio.run(scenario())


async def _report_with_a_waiting_claim(
    service: AgentService, first: ClaimedJob, request: ClaimRequest
) -> asyncio.Task[list[ClaimedJob]]:
    waiting = asyncio.create_task(service.claim(request))
    await _enlisted(service)
    await service.report(JobReport(job=first.ref, status=JobStatus.COMPLETED, exit_code=0))
    return waiting


def test_a_write_hands_nothing_to_a_draining_agent(database: Database) -> None:
    async def scenario() -> None:
        clock = Clock()
        runtime, service, execution_id = _setup(database, clock)
        request = ClaimRequest(agent_id="drained", pools=["default"], limit=2, wait=0.5)
        (first,) = await service.claim(request)
        await service.start(first.ref)
        with database.session() as session:
            agents_store.set_draining(session, "drained", True)
        # Its claims learn of the drain when they next write its presence (as before); a
        # write leaves a claim whose presence is due to its own transaction.
        clock.now += runtime.jobs.presence_every
        assert await service.claim(request.model_copy(update={"wait": 0})) == []
        waiting = await _report_with_a_waiting_claim(service, first, request)
        assert await asyncio.wait_for(waiting, 5) == []
        assert _second(database, execution_id).status == JobStatus.PENDING

    asyncio.run(scenario())


def test_a_write_hands_nothing_to_a_revoked_token(database: Database) -> None:
    async def scenario() -> None:
        _, service, execution_id = _setup(database)
        with database.session() as session:
            token, _ = issue_agent_token(session, name="t", pool="default", created_by="admin")
        request = ClaimRequest(agent_id="remote", pools=["default"], limit=2, wait=5)
        (first,) = await service.claim(request, token_id=token.id)
        await service.start(first.ref)
        waiting = asyncio.create_task(service.claim(request, token_id=token.id))
        await _enlisted(service)
        # Revoked in the database only (no wake-up): the write that takes the claim checks.
        with database.session() as session:
            tokens_store.revoke_token(session, token.id, datetime.now(UTC))
        await service.report(JobReport(job=first.ref, status=JobStatus.COMPLETED, exit_code=0))
        with pytest.raises(Unauthorized):
            await asyncio.wait_for(waiting, 5)
        assert _second(database, execution_id).status == JobStatus.PENDING

    asyncio.run(scenario())
