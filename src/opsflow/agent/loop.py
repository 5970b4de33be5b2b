"""The agent's job loop, shared by the server's local agent and ``opsflow agent``.

Register, then claim what fits in the free slots (a claim waits on the server until a job is
queued, so the loop never polls), and for each job: take a fresh copy of its version's files,
mark it running, run the executor while a side task heartbeats (which is how a cancel request
arrives) and a flusher ships log batches, then report the end with the last log lines. A
finished job frees its slot at once. The loop talks only to an `AgentClient`; it never sees
the server's database.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from opsflow.agent.client import AgentClient
from opsflow.agent.leftovers import MARK, reap
from opsflow.agent.logsink import DEFAULT_CAP_BYTES, BatchingLogSink
from opsflow.agent.outbox import DEFAULT_GIVE_UP_AFTER, Outbox
from opsflow.agent.protocol import (
    MAX_WAIT_SECONDS,
    CancelNotice,
    ClaimedJob,
    ClaimRequest,
    ConnectionGrant,
    HandBack,
    JobRef,
    JobReport,
    LogBatch,
    LogLine,
    Registration,
)
from opsflow.agent.spool import Record, Spool
from opsflow.auth.masking import Masker
from opsflow.errors import OpsflowError, ServerUnreachable, StaleReport, Unauthorized
from opsflow.status import JobStatus, LogLevel, LogStream
from opsflow.steps.base import CancelSignal, Connection, JobSpec, StepResult
from opsflow.steps.registry import executor_for, load_builtins
from opsflow.steps.scope import rest_migration_warmer
from opsflow.words import counted

log = logging.getLogger(__name__)

# What the agent says, once, when the server refuses its token (401): nothing it sends can
# land any more, so it stops rather than retrying forever.
REFUSED = "the server refused this agent's token (revoked?): stopping"

FLUSH_INTERVAL = 0.05
FLUSH_LINES = 200
MAX_BACKOFF = 10.0
LEAVE_WAIT = 5.0  # seconds a stopping agent waits to tell the server it leaves


class GivenUp(Exception):
    """The server failed a job's message for longer than the agent's ``give_up_after``: the
    agent stops working on the job and stops renewing its lease."""


T = TypeVar("T")


class Agent:
    def __init__(
        self,
        client: AgentClient,
        *,
        agent_id: str | None = None,
        pools: list[str] | None = None,
        labels: dict[str, str] | None = None,
        concurrency: int = 4,
        work_root: Path | None = None,
        heartbeat_interval: float | None = None,
        idle_poll: float = 1.0,
        long_poll: float = MAX_WAIT_SECONDS,
        log_cap_bytes: int = DEFAULT_CAP_BYTES,
        stop_grace: float | None = None,
        version: str = "",
        hostname: str = "",
        spool: Spool | None = None,
        start_on_claim: bool = True,
        give_up_after: float = DEFAULT_GIVE_UP_AFTER,
        on_serving: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.client = client
        # Called once, with the pools the server granted, when it accepted the first
        # registration: what the agent says about itself waits until the server agrees.
        self.on_serving = on_serving
        # Ask the claim to start the jobs it hands over (`ClaimRequest.start`), saving each
        # job the start's round trip and transaction. A claim whose answer is lost is sent
        # again (same claim id) and answered with the same started jobs; an agent that dies
        # before any answer loses the attempt when its lease runs out, as it would after a
        # start. False: the jobs come dispatched and each gets its own `start`.
        self.start_on_claim = start_on_claim
        self.agent_id = agent_id or f"agent-{uuid.uuid4().hex[:12]}"
        self.pools = pools or []
        self.labels = labels or {}
        self.concurrency = concurrency
        self.work_root = (work_root or Path(tempfile.gettempdir()) / "opsflow-jobs").resolve()
        # None: the interval the server asks for when the agent registers.
        self.heartbeat_interval = heartbeat_interval
        self.idle_poll = idle_poll  # first back-off step after a failed call
        self.long_poll = long_poll
        self.log_cap_bytes = log_cap_bytes
        # Seconds between SIGTERM and SIGKILL when a job is stopped; None: each executor's own.
        self.stop_grace = stop_grace
        self.version = version
        self.hostname = hostname
        # Seconds a job's message may keep failing (5xx, no answer) before the job is given
        # up and its lease left to run out (see `opsflow.agent.outbox`).
        self.give_up_after = give_up_after
        self._tasks: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopping = False
        # The server's 401 once it refused our token (revoked); `run` raises it at its end.
        self.refused: Unauthorized | None = None
        self._bundle_cache = self.work_root / "bundles"
        # The id of the claim being made, kept until an answer arrives: a claim whose answer
        # was lost is sent again with it, and the server hands over what that claim leased.
        self._claim_id = uuid.uuid4().hex
        self._claim_resent = False  # the claim with that id went out and got no answer
        self.jobs_done = 0
        self.jobs_failed = 0
        # Jobs in hand, and those being stopped to be handed back (a drain ran out of time).
        self._cancels: dict[str, CancelSignal] = {}
        self._handing_back: set[str] = set()
        # Job id -> whether its last heartbeat while it was being prepared was answered.
        self._renewed: dict[str, bool] = {}
        # Where messages wait while the server is unreachable; None: wait in memory (the
        # server's own agent, whose server cannot be unreachable).
        self.outbox = (
            Outbox(
                client,
                spool,
                probe_every=self._probe_every,
                running=self._cancels.__contains__,
                give_up_after=give_up_after,
            )
            if spool is not None
            else None
        )

    @property
    def running(self) -> int:
        """Jobs in hand now."""
        return len(self._tasks)

    async def run(self) -> None:
        """Serve jobs until ``stop``; in-flight jobs are awaited on the way out. Raises
        `Unauthorized` (after stopping the jobs in hand and awaiting them) when the server
        refused this agent's token, e.g. a revoked one: see `REFUSED`."""
        await self._run()
        if self.refused is not None:
            raise self.refused
        await self._leave()

    async def _leave(self) -> None:
        """A clean stop (the drain ended, the spool was emptied or kept for the next start):
        tell the server, which then shows this agent offline at once instead of after the
        online timeout. Best effort: an unreachable server learns it from the timeout."""
        try:
            await asyncio.wait_for(self.client.leave(self.agent_id), LEAVE_WAIT)
        except Exception as exc:  # the server gone, or (in-process) its database stopping
            log.warning(
                "could not tell the server this agent is leaving (%s): it shows the agent "
                "offline once its online timeout passes",
                exc,
            )

    def _refuse(self, exc: Unauthorized) -> None:
        """The server refused our token: stop claiming and stop the jobs in hand (none of
        their reports could land; the server fails them as "agent lost")."""
        if self.refused is None:
            self.refused = exc
            for cancel in self._cancels.values():
                cancel.request(force=True)
        self.stop()

    async def _run(self) -> None:
        self.work_root.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(reap, self.work_root)
        await asyncio.to_thread(load_builtins)
        if self.outbox is not None:
            # Before registering: a restart registration fails what is leased to our id, and
            # the reports of jobs our previous process finished must land first.
            await self.outbox.flush_before_start(self._stopped)
        if not await self._register(restarted=True):
            return
        if self.on_serving is not None:
            self.on_serving(self.pools)
        spooler = asyncio.create_task(self.outbox.run()) if self.outbox is not None else None
        try:
            while not self._stopping:
                free = self.concurrency - len(self._tasks)
                if free <= 0:
                    await self._wait_for_slot()
                    continue
                try:
                    jobs = await self._claim(free)
                except StaleReport:
                    raise
                except Unauthorized as exc:
                    self._refuse(exc)
                    break
                except Exception as exc:  # the server may be restarting: back off, then retry
                    log.warning("claiming jobs failed: %s", exc)
                    await self._pause(self._next_backoff())
                    await self._register(restarted=False)
                    continue
                self._backoff = 0.0
                for job in jobs:
                    task = asyncio.create_task(self._serve(job), name=f"job-{job.job_id}")
                    self._tasks.add(task)
                    task.add_done_callback(self._done)
        finally:
            try:
                if self._tasks:
                    await asyncio.gather(*self._tasks, return_exceptions=True)
            finally:
                # Every job's scope is closed: the cgroup migration warmer stops writing now,
                # not a linger later.
                await asyncio.to_thread(rest_migration_warmer)
            if spooler is not None and self.outbox is not None:
                spooler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await spooler
                await self.outbox.close()

    _backoff = 0.0

    def _next_backoff(self) -> float:
        self._backoff = min(MAX_BACKOFF, max(self.idle_poll, self._backoff * 2))
        return self._backoff

    async def _register(self, *, restarted: bool) -> bool:
        """Say who we are. On a process start the server fails what is still leased to our
        id (our previous process's, whose leftovers ``reap`` has just stopped), so their
        retries need not wait out the leases; this runs before the first claim, so nothing of
        ours is caught. False when stopped before the server answered."""
        registration = Registration(
            agent_id=self.agent_id,
            pools=self.pools,
            labels=self.labels,
            version=self.version,
            concurrency=self.concurrency,
            hostname=self.hostname,
            restarted=restarted,
        )
        while not self._stopping:
            try:
                registered = await self.client.register(registration)
            except Unauthorized as exc:
                self._refuse(exc)
                return False
            except OpsflowError as exc:
                if not isinstance(exc, ServerUnreachable):
                    raise
                log.warning("registering with the server failed: %s", exc.message)
                await self._pause(self._next_backoff())
                continue
            self._backoff = 0.0
            # Left out on the command line: the pool of the agent's token.
            self.pools = registered.pools
            if self.heartbeat_interval is None:
                self.heartbeat_interval = registered.heartbeat_seconds
            if registered.lost:
                log.warning(
                    "agent %s restarted: %s of its previous process failed as 'agent lost'",
                    self.agent_id,
                    counted(registered.lost, "attempt"),
                )
            return True
        return False

    async def _claim(self, free: int) -> list[ClaimedJob]:
        """Claim up to ``free`` jobs, waiting on the server for work; [] once stopped. A
        claim that fails (no answer, a 5xx) keeps its id for the next try, so that a lease it
        made on the server reaches us then (see `ClaimRequest.claim_id`)."""
        request = ClaimRequest(
            agent_id=self.agent_id,
            pools=self.pools,
            labels=self.labels,
            limit=free,
            wait=self.long_poll,
            claim_id=self._claim_id,
            resent=self._claim_resent,
            start=self.start_on_claim,
        )
        claim = asyncio.create_task(self.client.claim(request))
        stopped = asyncio.create_task(self._stopped.wait())
        try:
            await asyncio.wait({claim, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not claim.done():
            claim.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await claim
            return []
        if claim.exception() is not None:
            self._claim_resent = True  # it may have leased jobs on the server: ask again
            return claim.result()  # raises
        jobs = claim.result()
        self._claim_id = uuid.uuid4().hex  # answered: the next claim is a new one
        self._claim_resent = False
        return jobs

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)

    def stop(self) -> None:
        """Stop claiming; the jobs in hand run to their end (``run`` returns after them)."""
        self._stopping = True
        self._stopped.set()

    async def drain(self, grace: float) -> None:
        """Stop claiming and let the jobs in hand finish; those still running after ``grace``
        seconds are stopped and handed back to the server (queued again for another agent)."""
        self.stop()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for job_id, cancel in list(self._cancels.items()):
            log.warning(
                "job %s still running after %.0fs: stopping it, handing it back", job_id, grace
            )
            self._handing_back.add(job_id)
            cancel.request(force=False)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slot_freed.set()
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Said with its traceback here, not as 'Task exception was never retrieved'.
            log.error("%s ended on an error", task.get_name(), exc_info=exc)

    async def _wait_for_slot(self) -> None:
        self._slot_freed.clear()
        waits = [
            asyncio.create_task(self._stopped.wait()),
            asyncio.create_task(self._slot_freed.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _deliver(self, job_id: str, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` until the server answers: while it is unreachable the job goes on and
        what it has to say waits here (retried with back-off). A refusal is final. Raises
        `GivenUp` once the server has failed it for ``give_up_after`` seconds while
        answering the job's heartbeats (which would otherwise keep its lease for ever)."""
        delay = 0.0
        since: float | None = None
        while True:
            try:
                return await call()
            except ServerUnreachable as exc:
                now = time.monotonic()
                if not self._renewed.get(job_id):
                    since = None  # nothing keeps the lease alive: no clock
                elif since is None:
                    since = now
                if since is not None and now - since >= self.give_up_after:
                    raise GivenUp(
                        f"{what} failed for {now - since:.0f}s (last error: {exc.message})"
                    ) from exc
                delay = min(MAX_BACKOFF, max(self.idle_poll, delay * 2))
                log.warning("%s of job %s not delivered (%s); retrying", what, job_id, exc)
                await asyncio.sleep(delay)

    async def _send(self, record: Record, call: Callable[[], Awaitable[None]], what: str) -> None:
        """Deliver a job's message; while the server is unreachable it waits in the spool
        (or, without one, here). Raises `StaleReport` when the server refuses it."""
        if self.outbox is not None:
            await self.outbox.send(record, call)
        else:
            await self._deliver(record.job_id, what, call)

    def _probe_every(self) -> float:
        """The longest wait between tries to reach a silent server: at most a heartbeat
        interval, so a returning server hears from us before our leases run out."""
        return min(MAX_BACKOFF, self.heartbeat_interval or 1.0)

    # -- one job ---------------------------------------------------------------------------

    async def _workdir(self, job: ClaimedJob) -> Path:
        """A fresh directory with a copy of the job's workflow files (fetched once per hash)."""
        workdir = self.work_root / job.job_id
        if workdir.exists():
            await asyncio.to_thread(shutil.rmtree, workdir)
        bundle = job.bundle
        if not bundle:
            workdir.mkdir(parents=True)
            return workdir
        cached = self._bundle_cache / bundle
        if not cached.exists():
            partial = self._bundle_cache / f".{bundle}.{uuid.uuid4().hex[:8]}"
            await self._deliver(
                job.job_id, "fetching files", lambda: self.client.fetch_bundle(bundle, partial)
            )
            with contextlib.suppress(OSError):
                partial.rename(cached)
            if partial.exists():
                await asyncio.to_thread(shutil.rmtree, partial, ignore_errors=True)
        await asyncio.to_thread(shutil.copytree, cached, workdir, symlinks=True)
        return workdir

    async def _serve(self, job: ClaimedJob) -> None:
        ref = job.ref
        masker = Masker(job.mask) if job.mask else None
        # Masking happens here, before a line or an output leaves this agent.
        sink = BatchingLogSink(
            cap_bytes=self.log_cap_bytes,
            mask=masker.mask if masker is not None else None,
            mask_all=masker.mask_all if masker is not None else None,
            first_seq=job.first_seq,
        )
        cancel = CancelSignal()
        self._cancels[job.job_id] = cancel
        try:
            await self._run_and_report(job, ref, masker, sink, cancel)
        finally:
            self._cancels.pop(job.job_id, None)
            self._handing_back.discard(job.job_id)
            self._renewed.pop(job.job_id, None)

    async def _run_and_report(
        self,
        job: ClaimedJob,
        ref: JobRef,
        masker: Masker | None,
        sink: BatchingLogSink,
        cancel: CancelSignal,
    ) -> None:
        workdir: Path | None = None
        try:
            # Fetching files can take longer than a lease (a big bundle or plan, a slow link,
            # a loaded machine): the lease is renewed meanwhile, as while the job runs. A job
            # the claim started with nothing to fetch needs no keeper (a task per job).
            keeper = (
                asyncio.create_task(self._keep_lease(ref))
                if job.bundle or job.inputs or not job.started
                else None
            )
            try:
                workdir = await self._workdir(job)
                inputs = await self._inputs(ref, workdir, job.inputs)
                # A job the claim started needs no start of its own (nobody can have asked
                # to stop it yet; later requests come with the heartbeats).
                notice = (
                    CancelNotice()
                    if job.started
                    else await self._deliver(
                        job.job_id, "the start", lambda: self.client.start(ref)
                    )
                )
            finally:
                if keeper is not None:
                    keeper.cancel()
                    await asyncio.gather(keeper, return_exceptions=True)
            _obey(cancel, notice)
            spec = JobSpec(
                job_id=job.job_id,
                execution_id=job.execution_id,
                step_id=job.step_id,
                attempt=job.attempt,
                type=job.type,
                config=job.config,
                workdir=workdir,
                timeout=job.timeout,
                env={
                    "OPSFLOW_EXECUTION_ID": job.execution_id,
                    "OPSFLOW_STEP_ID": job.step_id,
                    "OPSFLOW_JOB_ID": job.job_id,
                    "OPSFLOW_ATTEMPT": str(job.attempt),
                    # Lets a restarted agent find and stop this job's processes.
                    MARK: str(self.work_root),
                },
                secrets=tuple(job.mask),
                inputs=inputs,
                server_url=self.client.server_url,
                job_credentials=(job.job_id, job.lease_token),
                grace=self.stop_grace,
                connection=_connection(job.connection),
            )
            result = await self._execute(ref, spec, sink, cancel)
        except (StaleReport, Unauthorized, GivenUp) as exc:
            if isinstance(exc, Unauthorized):
                self._refuse(exc)
            elif isinstance(exc, GivenUp):
                _say_given_up(job.job_id, job.attempt, exc)
            else:
                log.warning("job %s is no longer ours: %s", job.job_id, exc.message)
            if workdir is not None:
                await asyncio.to_thread(_remove, workdir)
            return
        except Exception as exc:  # an agent-side fault fails the attempt, visibly
            log.exception("job %s crashed in the agent", job.job_id)
            sink.write(LogStream.SYSTEM, f"[opsflow] agent error: {exc!r}", LogLevel.ERROR)
            result = StepResult(status=JobStatus.FAILED, error=f"agent error: {exc}")
        if job.job_id in self._handing_back:
            await self._hand_back(ref, job.attempt, sink, workdir)
            return
        artifacts, problem = _read_artifacts(result.artifacts)
        if problem is not None:
            sink.write(LogStream.SYSTEM, f"[opsflow] {problem}", LogLevel.ERROR)
            result = StepResult(status=JobStatus.FAILED, outputs=result.outputs, error=problem)
        outputs = dict(result.outputs)
        error = result.error
        if masker is not None:
            outputs = masker.mask_value(outputs)
            error = masker.mask(error) if error else error
        exit_code = outputs.get("exit_code") if isinstance(outputs.get("exit_code"), int) else None
        *earlier, last = sink.finish()
        try:
            for batch in earlier:  # bounded batches; the last one goes with the final report
                await self._ship(ref, batch)
            report = JobReport(
                job=ref,
                status=result.status,
                outputs=outputs,
                error=error,
                retryable=result.retryable,
                exit_code=exit_code,
                lines=last,
                artifacts=artifacts,
            )
            await self._send(
                Record("report", report, job.attempt),
                lambda: self.client.report(report),
                "the report",
            )
            if result.status == JobStatus.COMPLETED:
                self.jobs_done += 1
            else:
                self.jobs_failed += 1
        except Unauthorized as exc:
            self._refuse(exc)
        except StaleReport as exc:
            log.warning("report for job %s refused: %s", job.job_id, exc.message)
        except GivenUp as exc:  # without a spool: the report waited here
            _say_given_up(job.job_id, job.attempt, exc)
        finally:
            if workdir is not None:
                # Removing a big tree takes a while: never on the event loop.
                await asyncio.to_thread(_remove, workdir)

    async def _hand_back(
        self, ref: JobRef, attempt: int, sink: BatchingLogSink, workdir: Path | None
    ) -> None:
        """The drain stopped this job: say so in its log and queue it again."""
        sink.write(LogStream.SYSTEM, "[opsflow] the agent is stopping: job handed back")
        try:
            for batch in sink.finish():
                if batch:
                    await self._ship(ref, batch)
            await self._send(
                Record("hand_back", HandBack(job=ref), attempt),
                lambda: self.client.hand_back(ref),
                "the hand-back",
            )
        except Unauthorized as exc:
            self._refuse(exc)
        except StaleReport as exc:
            log.warning("hand-back of job %s refused: %s", ref.job_id, exc.message)
        except GivenUp as exc:
            _say_given_up(ref.job_id, attempt, exc)
        finally:
            if workdir is not None:
                await asyncio.to_thread(_remove, workdir)

    async def _inputs(
        self, ref: JobRef, workdir: Path, wanted: Mapping[str, Mapping[str, str]]
    ) -> dict[str, Path]:
        """Fetch the files earlier steps left for this job into the job's own directory."""
        paths: dict[str, Path] = {}
        if not wanted:
            return paths
        folder = workdir / ".opsflow-inputs"
        folder.mkdir(parents=True, exist_ok=True)
        for name, source in wanted.items():
            fetch = functools.partial(
                self.client.fetch_artifact, ref, source["step"], source["name"]
            )
            data = await self._deliver(ref.job_id, f"fetching input {name!r}", fetch)
            path = folder / name
            await asyncio.to_thread(path.write_bytes, data)
            paths[name] = path
        return paths

    async def _execute(
        self, ref: JobRef, spec: JobSpec, sink: BatchingLogSink, cancel: CancelSignal
    ) -> StepResult:
        executor = executor_for(spec.type)
        nudge = asyncio.Event()
        sink.on_line = lambda: nudge.set() if sink.pending >= FLUSH_LINES else None
        run = asyncio.create_task(executor.run(spec, sink, cancel))
        flusher = asyncio.create_task(self._flush_loop(ref, sink, nudge, run))
        watcher = asyncio.create_task(self._watch_loop(ref, cancel, run))
        try:
            return await run
        finally:
            # The flusher is never cut off mid-batch: a batch it took from the sink must be
            # stored before the final report, or its lines would be lost (a visible gap).
            nudge.set()
            watcher.cancel()
            await asyncio.gather(flusher, watcher, return_exceptions=True)

    async def _flush_loop(
        self, ref: JobRef, sink: BatchingLogSink, nudge: asyncio.Event, run: asyncio.Task[Any]
    ) -> None:
        """Ship a batch whenever enough lines wait (or every ``FLUSH_INTERVAL``), whole batches
        back to back while the step prints faster than one batch per round trip."""
        while True:
            if not run.done() and not sink.full:
                # `asyncio.timeout`, not `wait_for`: no task per wait (each running job
                # waits here every FLUSH_INTERVAL).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FLUSH_INTERVAL):
                        await nudge.wait()
            nudge.clear()
            if run.done():
                return  # what is left goes with the final report, in order
            batch = sink.take()
            if batch:
                await self._ship(ref, batch)

    async def _ship(self, ref: JobRef, batch: list[LogLine]) -> None:
        """Deliver one batch; while the server is unreachable it goes to the spool (without
        one it waits here: the sink holds the rest back meanwhile, so the executor slows down
        rather than memory growing)."""
        # Built without validation: the lines are the sink's own `LogLine`s (numbered, typed,
        # within the limits); validating 5,000 of them cost 2 us each on the event loop. The
        # server validates what a remote agent sends (the HTTP route).
        message = LogBatch.model_construct(job=ref, lines=batch)
        try:
            await self._send(
                Record("logs", message), lambda: self.client.send_logs(message), "a log batch"
            )
        except StaleReport:
            raise
        except Unauthorized as exc:
            self._refuse(exc)  # one line for the agent's exit, not a traceback per batch
        except Exception:
            log.exception("shipping logs of job %s failed; they will show as a gap", ref.job_id)

    async def _keep_lease(self, ref: JobRef) -> None:
        """Heartbeat a claimed job until cancelled (while it is being prepared); a refusal
        ends it (the start that follows is refused too). Stop requests wait for the start's
        answer, which carries them."""
        interval = self.heartbeat_interval or 5.0
        while True:
            await asyncio.sleep(interval)
            try:
                await self.client.heartbeat(ref)
                self._renewed[ref.job_id] = True
            except Unauthorized as exc:
                self._refuse(exc)
                return
            except StaleReport:
                return
            except Exception as exc:
                self._renewed[ref.job_id] = False
                log.warning("heartbeat of job %s failed: %s", ref.job_id, exc)

    async def _watch_loop(self, ref: JobRef, cancel: CancelSignal, run: asyncio.Task[Any]) -> None:
        """Heartbeat the lease; the reply (or an in-process wake-up) carries cancel requests."""
        interval = self.heartbeat_interval or 5.0
        async with self.client.watch_cancel(ref.job_id) as sub:
            while not run.done():
                await sub.wait(interval)
                try:
                    notice = await self.client.heartbeat(ref)
                except (StaleReport, Unauthorized) as exc:
                    # Someone else owns this job now, or our token was revoked (the lease
                    # runs out unrenewed): stop working on it at once.
                    if isinstance(exc, Unauthorized):
                        self._refuse(exc)
                    else:
                        log.warning("lost the lease of job %s: %s", ref.job_id, exc.message)
                    cancel.request(force=True)
                    return
                except Exception as exc:
                    log.warning("heartbeat of job %s failed: %s", ref.job_id, exc)
                    continue
                _obey(cancel, notice)


def _say_given_up(job_id: str, attempt: int, why: GivenUp) -> None:
    log.error(
        "gave up job %s (attempt %d): %s; stopped renewing its lease: the server declares the "
        "attempt lost once the lease runs out and retries the step as its retries allow",
        job_id,
        attempt,
        why,
    )


def _obey(cancel: CancelSignal, notice: CancelNotice) -> None:
    """Pass the server's stop request on to the executor; requests only ever strengthen."""
    if not notice.requested:
        return
    if notice.timed_out:
        cancel.time_out()
    elif not cancel.requested or (notice.force and not cancel.force):
        cancel.request(notice.force)


MAX_ARTIFACT_BYTES = 256 * 1024 * 1024


def _remove(workdir: Path) -> None:
    """Remove a job's directory (blocking): a plain ``rmdir`` when the job left it empty (an
    inline script's usual end), the whole tree otherwise."""
    try:
        workdir.rmdir()
    except OSError:
        shutil.rmtree(workdir, ignore_errors=True)


def _read_artifacts(wanted: Mapping[str, Path]) -> tuple[dict[str, bytes], str | None]:
    """The files an executor asked to keep, or why they cannot be kept."""
    out: dict[str, bytes] = {}
    for name, path in wanted.items():
        try:
            size = path.stat().st_size
            if size > MAX_ARTIFACT_BYTES:
                return {}, f"artifact {name!r} is {size} bytes, over the {MAX_ARTIFACT_BYTES} limit"
            out[name] = path.read_bytes()
        except OSError as exc:
            return {}, f"artifact {name!r} could not be read: {exc.strerror or exc}"
    return out, None


def _connection(grant: ConnectionGrant | None) -> Connection | None:
    """The executor's view of the connection a claim delivered."""
    if grant is None:
        return None
    return Connection(name=grant.name, type=grant.type, values=dict(grant.values))
