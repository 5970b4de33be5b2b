"""The server's end of the agent protocol, shared by the HTTP routes and the local agent.

``AgentService`` turns protocol messages into `AgentJobs` calls, run in worker threads so the
event loop never waits on the database. Two things happen here rather than in a transaction:

- a claim waits: when nothing is queued it sleeps on the event bus until the runtime queues a
  job (woken within milliseconds, no polling) or the agent's wait runs out;
- final reports and log batches are written together: whatever arrives while the previous
  write is going on goes into the next transaction, from any number of agents and jobs (a
  fan-out's jobs each ship a batch and a report; one commit then serves many of them);
- a waiting claim is enlisted (`WaitingClaim`) while it sleeps, and a write whose reconciles
  queued jobs leases them to the enlisted claims in its own transaction (`AgentJobs.write_serving`):
  after its commit those claims answer with their jobs, without a claim transaction of their
  own. A chain's link is then one transaction (the report, the reconcile, the next job queued
  and leased), not two. Only this process's claims are served so; other replicas' claims
  wake by the bus (PostgreSQL LISTEN) as before.

``InProcessClient`` is the server's own agent's `opsflow.agent.client.AgentClient`: the same
messages, no network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

from opsflow.agent.client import Waiter
from opsflow.agent.protocol import (
    MAX_WAIT_SECONDS,
    CancelNotice,
    ClaimedJob,
    ClaimRequest,
    JobRef,
    JobReport,
    LogBatch,
    Registered,
    Registration,
)
from opsflow.errors import OpsflowError, StaleReport
from opsflow.runtime.agent_jobs import AgentJobs, Served, WaitingClaim
from opsflow.runtime.bus import EventBus, Subscription
from opsflow.runtime.connections import CONNECTION_KEY
from opsflow.runtime.roster import presence_round
from opsflow.runtime.secrets import VALUES_KEY
from opsflow.status import JobStatus, StepType
from opsflow.store.jobs import Job
from opsflow.words import counted

log = logging.getLogger(__name__)


def claimed(job: Job) -> ClaimedJob:
    """The protocol's view of a freshly claimed job (its spec holds the secrets' values)."""
    assert job.lease_token is not None
    spec = job.spec or {}
    return ClaimedJob(
        job_id=job.id,
        lease_token=job.lease_token,
        epoch=job.lease_epoch,
        execution_id=job.execution_id,
        step_id=job.step_id,
        attempt=job.attempt,
        type=StepType(job.type),
        config=spec.get("config") or {},
        bundle=spec.get("bundle"),
        inputs=spec.get("inputs") or {},
        timeout=job.timeout,
        mask=list(spec.get(VALUES_KEY) or []),
        connection=spec.get(CONNECTION_KEY),
        first_seq=job.last_seq + 1,
        started=job.status == JobStatus.RUNNING,
    )


@dataclass(eq=False)
class _Enlisted:
    """A waiting claim and how to answer it (on the event loop)."""

    claim: WaitingClaim
    answer: asyncio.Future[list[Job]]  # what a write leased to it, set after its commit
    wake: Callable[[], None]
    abandoned: bool = False  # its caller gave up after a write took it


class AgentService:
    """Agent protocol calls, async, over the runtime's `AgentJobs`."""

    def __init__(
        self,
        jobs: AgentJobs,
        bus: EventBus,
        *,
        lease_seconds: float,
        heartbeat_seconds: float,
    ) -> None:
        self.jobs = jobs
        self.bus = bus
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        # How long a waiting claim waits between claim transactions, each of which renews the
        # agent's presence row (an idle agent waits for work for hours).
        self.presence_round = presence_round(lease_seconds)
        # Reports and log batches waiting for the next write, each with its caller's answer.
        self._writes: list[tuple[JobReport | LogBatch, asyncio.Future[OpsflowError | None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._background: set[asyncio.Future[None]] = set()
        # agent id -> the bus's `jobs_generation` read before its last claim transaction
        # that leased fewer jobs than asked: the queue held nothing more for it then.
        self._drained: dict[str, int] = {}
        # The claims waiting on the bus, longest-waiting first, which a write may take (from
        # its thread: under the lock), and those a write took and has not answered yet.
        self._waiting_lock = threading.Lock()
        self._waiting: dict[WaitingClaim, _Enlisted] = {}
        self._held: dict[WaitingClaim, _Enlisted] = {}

    async def register(
        self, registration: Registration, pools: list[str], *, token_id: str | None = None
    ) -> Registered:
        """Welcome an agent (``token_id``: the agent token it used; None in-process); on a
        process start, fail its previous process's attempts."""
        await asyncio.to_thread(
            self.jobs.register,
            agent_id=registration.agent_id,
            pools=pools,
            labels=registration.labels,
            version=registration.version,
            hostname=registration.hostname,
            token_id=token_id,
            concurrency=registration.concurrency,
        )
        lost = 0
        if registration.restarted:
            lost = await asyncio.to_thread(self.jobs.declare_lost, registration.agent_id)
        log.info(
            "agent %s registered: pool %s%s, %s, version %s%s%s",
            registration.agent_id,
            ", ".join(pools),
            "".join(f" {k}={v}" for k, v in sorted(registration.labels.items())),
            counted(registration.concurrency, "slot"),
            registration.version or "?",
            f", on {registration.hostname}" if registration.hostname else "",
            f"; {counted(lost, 'attempt')} of its previous process lost" if lost else "",
        )
        return Registered(
            agent_id=registration.agent_id,
            pools=pools,
            lease_seconds=self.lease_seconds,
            heartbeat_seconds=self.heartbeat_seconds,
            max_wait_seconds=MAX_WAIT_SECONDS,
            lost=lost,
        )

    async def claim(
        self, request: ClaimRequest, *, token_id: str | None = None
    ) -> list[ClaimedJob]:
        """Lease jobs; when none is queued, wait (up to ``request.wait``) until one is.

        ``token_id`` is the agent token of a remote agent (None in-process): each round's
        claim transaction checks it is still live and raises `Unauthorized` once it is
        revoked. A revocation wakes every waiting claim (as a queued job does), so a claim
        waiting with a revoked token answers at once."""
        deadline = time.monotonic() + min(request.wait, MAX_WAIT_SECONDS)
        async with self.bus.watch_jobs() as queued:
            # This agent's last claim left jobs it could have taken, or nothing was queued
            # since it found the queue empty: then a claim transaction now would find nothing
            # (the agent claims again at once after each job): wait first. A wake-up after
            # this look is caught by the subscription above.
            # (Not a claim sent again: its first try's answer, lost, is what it asks for.)
            drained = self._drained.get(request.agent_id) == self.bus.jobs_generation
            if request.wait > 0 and drained and not request.resent:
                timeout = min(deadline - time.monotonic(), self.presence_round)
                served = await self._wait(request, token_id, queued, timeout)
                if served:
                    return [claimed(job) for job in served]
            while True:
                # A wake-up from before this attempt is answered by it: forget it.
                queued.clear()
                generation = self.bus.jobs_generation
                jobs = await self._claim_once(request, token_id)
                if len(jobs) < request.limit:
                    self._drained[request.agent_id] = generation
                else:
                    self._drained.pop(request.agent_id, None)
                left = deadline - time.monotonic()
                if jobs or left <= 0:
                    return [claimed(job) for job in jobs]
                # At most a presence round at a time: each round's claim transaction renews
                # the agent's presence row (`AgentJobs.claim`).
                served = await self._wait(request, token_id, queued, min(left, self.presence_round))
                if served:
                    return [claimed(job) for job in served]

    async def _wait(
        self,
        request: ClaimRequest,
        token_id: str | None,
        queued: Subscription,
        timeout: float,
    ) -> list[Job] | None:
        """Wait on the bus up to ``timeout`` seconds, enlisted meanwhile so that a write may
        lease jobs to this claim in its own transaction. Returns what a write leased (after
        its commit), or None: woken by the bus, or timed out, the caller claims itself.

        A write that took the claim answers it whatever happens: if the claim is cancelled
        meanwhile (its agent stopping, its HTTP client gone) what was leased to it is handed
        back, never left to expire as 'agent lost' (as `_claim_once` does)."""
        end = time.monotonic() + timeout
        loop = asyncio.get_running_loop()
        while True:
            enlisted = _Enlisted(
                WaitingClaim(
                    agent_id=request.agent_id,
                    pools=request.pools,
                    labels=request.labels,
                    limit=request.limit,
                    start=request.start,
                    claim_id=request.claim_id,
                    token_id=token_id,
                ),
                loop.create_future(),
                queued.wake,
            )
            with self._waiting_lock:
                self._waiting[enlisted.claim] = enlisted
            try:
                await queued.wait(max(0.0, end - time.monotonic()))
                if self._withdraw(enlisted.claim):
                    return None  # not taken: the bus woke it, or its time ran out
                served = await asyncio.shield(enlisted.answer)
            except asyncio.CancelledError:
                self._abandon(enlisted)
                raise
            if served:
                return served
            # The write took it but found nothing for it (labels): wait on unless a job was
            # queued since (`jobs_generation` moves with every wake-up of the bus).
            drained = self._drained.get(request.agent_id) == self.bus.jobs_generation
            if not drained or time.monotonic() >= end:
                return None

    def _withdraw(self, claim: WaitingClaim) -> bool:
        """Stop offering ``claim`` to writes; False when a write has taken it."""
        with self._waiting_lock:
            return self._waiting.pop(claim, None) is not None

    def _abandon(self, enlisted: _Enlisted) -> None:
        """The claim's caller gave up: withdraw it, or (a write took it) hand back what the
        write leased to it, now or when the write answers."""
        if self._withdraw(enlisted.claim):
            return
        answer = enlisted.answer
        if not answer.done():
            enlisted.abandoned = True  # `_answer` hands its jobs back
        elif not answer.cancelled() and answer.exception() is None:
            self._hand_back_jobs(answer.result())

    def take(
        self, pools: set[str], eligible: Callable[[WaitingClaim], bool]
    ) -> WaitingClaim | None:
        """`WaitingClaims.take`, for a write (from its thread)."""
        with self._waiting_lock:
            for claim in self._waiting:
                if pools.intersection(claim.pools) and eligible(claim):
                    self._held[claim] = self._waiting.pop(claim)
                    return claim
        return None

    def _answer(self, taken: list[WaitingClaim], served: Served, generation: int) -> None:
        """After a write (committed, or rolled back: ``served`` empty), answer each claim it
        took: with its jobs, with nothing (it waits on), or with why not (a revoked token);
        those of a caller that gave up meanwhile are handed back."""
        for claim in taken:
            with self._waiting_lock:
                enlisted = self._held.pop(claim)
            result = served.get(claim, [])
            if isinstance(result, list):
                if len(result) < claim.limit:
                    self._drained[claim.agent_id] = generation
                else:
                    self._drained.pop(claim.agent_id, None)
            if enlisted.abandoned:
                if isinstance(result, list):
                    self._hand_back_jobs(result)
                continue
            if isinstance(result, list):
                enlisted.answer.set_result(result)
            else:
                enlisted.answer.set_exception(result)
            enlisted.wake()

    async def until_stopping(self) -> None:
        """Return once the server begins to stop (`EventBus.stop_waits`)."""
        async with self.bus.watch_jobs() as woken:
            while not self.bus.stopping:
                await woken.wait(self.presence_round)

    async def _claim_once(self, request: ClaimRequest, token_id: str | None) -> list[Job]:
        """One claim transaction. If the caller gives up meanwhile (an agent stopping, a
        client gone) the transaction still finishes in its thread: what it leased is handed
        back, never left to expire as 'agent lost'."""
        work = asyncio.ensure_future(
            asyncio.to_thread(
                self.jobs.claim,
                agent_id=request.agent_id,
                pools=request.pools,
                labels=request.labels,
                limit=request.limit,
                token_id=token_id,
                claim_id=request.claim_id,
                resent=request.resent,
                start=request.start,
            )
        )
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            work.add_done_callback(self._hand_back_all)
            raise

    def _hand_back_all(self, work: asyncio.Future[list[Job]]) -> None:
        if work.cancelled() or work.exception() is not None:
            return
        self._hand_back_jobs(work.result())

    def _hand_back_jobs(self, jobs: list[Job]) -> None:
        """Queue ``jobs`` again (in a thread): leased to a claim whose caller gave up."""
        refs = [claimed(job).ref for job in jobs]
        if refs:
            task = asyncio.ensure_future(asyncio.to_thread(self._hand_back_each, refs))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _hand_back_each(self, refs: list[JobRef]) -> None:
        for ref in refs:
            with contextlib.suppress(StaleReport):
                self.jobs.hand_back(ref, unanswered=True)

    async def start(self, job: JobRef) -> CancelNotice:
        return await asyncio.to_thread(self.jobs.start_job, job)

    async def heartbeat(self, job: JobRef) -> CancelNotice:
        return await asyncio.to_thread(self.jobs.heartbeat, job)

    async def send_logs(self, batch: LogBatch) -> None:
        """Store a batch of a job's lines (in the next write, see `report`); raises
        `StaleReport` when its lease is not current, `InvalidInput` over the limits."""
        await self._write(batch)

    async def hand_back(self, job: JobRef) -> None:
        await asyncio.to_thread(self.jobs.hand_back, job)

    async def leave(self, agent_id: str, *, token_id: str | None = None) -> None:
        """The agent stops (``token_id``: the agent token it registered with; None in-process):
        offline at once on every replica."""
        await asyncio.to_thread(self.jobs.leave, agent_id, token_id=token_id)

    async def fetch_artifact(self, job: JobRef, step_id: str, name: str) -> bytes:
        return await asyncio.to_thread(self.jobs.fetch_artifact, job, step_id, name)

    async def fetch_bundle(self, digest: str, dest: Path) -> None:
        await asyncio.to_thread(self.jobs.read_bundle, digest, dest)

    async def report(self, report: JobReport) -> None:
        """Record a job's end; raises `StaleReport` when its lease is not current."""
        await self._write(report)

    async def _write(self, item: JobReport | LogBatch) -> None:
        done: asyncio.Future[OpsflowError | None] = asyncio.get_running_loop().create_future()
        self._writes.append((item, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        problem = await done
        if problem is not None:
            raise problem

    async def _write_all(self) -> None:
        """Write every waiting report and log batch in one transaction; repeat while more
        arrived meanwhile."""
        while self._writes:
            group, self._writes = _one_write(self._writes)
            reports = [(item, done) for item, done in group if isinstance(item, JobReport)]
            batches = [(item, done) for item, done in group if isinstance(item, LogBatch)]
            # The jobs the reports' reconciles queue are leased to this process's waiting
            # claims in the same transaction (`take`); each claim it took is answered after.
            taken: list[WaitingClaim] = []
            generation = self.bus.jobs_generation
            try:
                refused, refused_batches, served = await asyncio.to_thread(
                    self.jobs.write_serving,
                    [r for r, _ in reports],
                    [b for b, _ in batches],
                    self,
                    taken,
                )
            except Exception as exc:
                self._answer(taken, {}, generation)  # rolled back: nothing leased
                # Its transaction rolled back: nothing of these was written. Said here with
                # the traceback, since the caller may be a task nobody waits on.
                what = [
                    f"the {kind} of " + ", ".join(f"job {item.job.job_id}" for item, _ in items)
                    for kind, items in (("end", reports), ("lines", batches))
                    if items
                ]
                log.exception("recording %s failed; nothing of it was written", " and ".join(what))
                for _, done in group:
                    if not done.done():
                        done.set_exception(exc)
                continue
            self._answer(taken, served, generation)
            results: list[OpsflowError | None] = [*refused, *refused_batches]
            for (_, done), result in zip([*reports, *batches], results, strict=True):
                if not done.done():
                    done.set_result(result)


def _one_write(
    waiting: list[tuple[JobReport | LogBatch, asyncio.Future[OpsflowError | None]]],
) -> tuple[
    list[tuple[JobReport | LogBatch, asyncio.Future[OpsflowError | None]]],
    list[tuple[JobReport | LogBatch, asyncio.Future[OpsflowError | None]]],
]:
    """What goes into the next write, and what waits for the one after. A write stores its
    batches after its reports, so it ends before a job's report that came after a batch of
    that job (its lines before its end, as they were sent)."""
    with_lines: set[str] = set()
    for i, (item, _) in enumerate(waiting):
        if isinstance(item, LogBatch):
            with_lines.add(item.job.job_id)
        elif item.job.job_id in with_lines:
            return waiting[:i], waiting[i:]
    return waiting, []


class InProcessClient:
    """The server's own agent's client: `AgentService` calls without the network."""

    def __init__(self, service: AgentService, server_url: str | None = None) -> None:
        self.service = service
        self._server_url = server_url
        self.pools: list[str] = []

    @property
    def server_url(self) -> str | None:
        return self._server_url

    async def register(self, registration: Registration) -> Registered:
        return await self.service.register(registration, registration.pools)

    async def claim(self, request: ClaimRequest) -> list[ClaimedJob]:
        return await self.service.claim(request)

    async def start(self, job: JobRef) -> CancelNotice:
        return await self.service.start(job)

    async def heartbeat(self, job: JobRef) -> CancelNotice:
        return await self.service.heartbeat(job)

    async def send_logs(self, batch: LogBatch) -> None:
        await self.service.send_logs(batch)

    async def report(self, report: JobReport) -> None:
        await self.service.report(report)

    async def hand_back(self, job: JobRef) -> None:
        await self.service.hand_back(job)

    async def leave(self, agent_id: str) -> None:
        await self.service.leave(agent_id)

    async def fetch_bundle(self, digest: str, dest: Path) -> None:
        await self.service.fetch_bundle(digest, dest)

    async def fetch_artifact(self, job: JobRef, step_id: str, name: str) -> bytes:
        return await self.service.fetch_artifact(job, step_id, name)

    def watch_cancel(self, job_id: str) -> AbstractAsyncContextManager[Waiter]:
        """In-process, a cancel wakes the job at once instead of at its next heartbeat (the
        bus's subscription itself: every running job enters one)."""
        return self.service.bus.watch_cancel(job_id)
