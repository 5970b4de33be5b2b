"""The agent's job loop, shared by the server's local agent and ``opsflow agent``.

Claim what fits in the free slots, then for each job: take a fresh copy of its version's files,
mark it running, run the executor while a side task heartbeats (which is how a cancel request
arrives) and a flusher ships log batches, then report the end with the last log lines. The
loop never polls on the hot path: the gateway wakes it when jobs are queued, and a finished job
frees its slot at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opsflow.agent.gateway import Gateway
from opsflow.agent.leftovers import MARK, reap
from opsflow.agent.logsink import DEFAULT_CAP_BYTES, BatchingLogSink
from opsflow.auth.masking import Masker
from opsflow.errors import StaleReport
from opsflow.runtime.secrets import VALUES_KEY
from opsflow.status import JobStatus, LogLevel, LogStream, StepType
from opsflow.steps.base import CancelSignal, JobSpec, StepResult
from opsflow.steps.registry import executor_for, load_builtins
from opsflow.store.jobs import CancelNotice, Job
from opsflow.store.logs import LogLine

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.05
FLUSH_LINES = 200


class Agent:
    def __init__(
        self,
        gateway: Gateway,
        *,
        agent_id: str | None = None,
        pools: list[str] | None = None,
        labels: dict[str, str] | None = None,
        concurrency: int = 4,
        work_root: Path | None = None,
        heartbeat_interval: float = 5.0,
        idle_poll: float = 1.0,
        log_cap_bytes: int = DEFAULT_CAP_BYTES,
        stop_grace: float | None = None,
    ) -> None:
        self.gateway = gateway
        self.agent_id = agent_id or f"agent-{uuid.uuid4().hex[:12]}"
        self.pools = pools or ["default"]
        self.labels = labels or {}
        self.concurrency = concurrency
        self.work_root = (work_root or Path(tempfile.gettempdir()) / "opsflow-jobs").resolve()
        self.heartbeat_interval = heartbeat_interval
        self.idle_poll = idle_poll
        self.log_cap_bytes = log_cap_bytes
        # Seconds between SIGTERM and SIGKILL when a job is stopped; None: each executor's own.
        self.stop_grace = stop_grace
        self._tasks: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopping = False
        self._bundle_cache = self.work_root / "bundles"

    async def run(self) -> None:
        """Serve jobs until ``stop``; in-flight jobs are awaited on the way out."""
        self.work_root.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(reap, self.work_root)
        await asyncio.to_thread(load_builtins)
        await self._declare_lost()
        try:
            while not self._stopping:
                free = self.concurrency - len(self._tasks)
                jobs = []
                if free > 0:
                    try:
                        jobs = await self.gateway.claim(
                            agent_id=self.agent_id, pools=self.pools, labels=self.labels, limit=free
                        )
                    except Exception:  # the server may be restarting: back off, then retry
                        log.exception("claiming jobs failed")
                        await asyncio.sleep(self.idle_poll)
                        continue
                for job in jobs:
                    task = asyncio.create_task(self._serve(job), name=f"job-{job.id}")
                    self._tasks.add(task)
                    task.add_done_callback(self._done)
                if jobs and len(jobs) == free:
                    continue  # there may be more: claim again as soon as a slot frees
                await self._idle(free=len(self._tasks) < self.concurrency)
        finally:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _declare_lost(self) -> None:
        """What is still leased to our id was our previous process's, whose leftovers ``reap``
        has just stopped: fail those attempts now so their retries need not wait out the
        leases. Runs before the first claim, so nothing of ours is caught."""
        while not self._stopping:
            try:
                lost = await self.gateway.declare_lost(self.agent_id)
            except Exception:  # the server may be restarting: back off, then retry
                log.exception("declaring the previous process's attempts lost failed")
                await asyncio.sleep(self.idle_poll)
                continue
            if lost:
                log.warning(
                    "agent %s restarted: %d attempt(s) of its previous process failed as "
                    "'agent lost'",
                    self.agent_id,
                    lost,
                )
            return

    def stop(self) -> None:
        self._stopping = True
        self._stopped.set()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slot_freed.set()

    async def _idle(self, *, free: bool) -> None:
        """With a free slot, wait for news of queued work (a job's end that queued its
        successor says so itself); when full, wait for a slot to free up."""
        self._slot_freed.clear()
        waits: list[asyncio.Task[Any]] = [asyncio.create_task(self._stopped.wait())]
        if free:
            waits.append(asyncio.create_task(self.gateway.wait_for_work(self.idle_poll)))
        else:
            waits.append(asyncio.create_task(self._slot_freed.wait()))
            waits.append(asyncio.create_task(asyncio.sleep(self.idle_poll)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            self._slot_freed.clear()

    # -- one job ---------------------------------------------------------------------------

    async def _workdir(self, job: Job, bundle: str | None) -> Path:
        workdir = self.work_root / job.id
        if workdir.exists():
            await asyncio.to_thread(shutil.rmtree, workdir)
        if not bundle:
            workdir.mkdir(parents=True)
            return workdir
        cached = self._bundle_cache / bundle
        if not cached.exists():
            partial = self._bundle_cache / f".{bundle}.{uuid.uuid4().hex[:8]}"
            await self.gateway.materialize(bundle, partial)
            with contextlib.suppress(OSError):
                partial.rename(cached)
            if partial.exists():
                await asyncio.to_thread(shutil.rmtree, partial, ignore_errors=True)
        await asyncio.to_thread(shutil.copytree, cached, workdir, symlinks=True)
        return workdir

    async def _serve(self, job: Job) -> None:
        secrets: list[str] = list((job.spec or {}).get(VALUES_KEY) or [])
        masker = Masker(secrets) if secrets else None
        # Masking happens here, before a line or an output leaves this agent.
        sink = BatchingLogSink(
            cap_bytes=self.log_cap_bytes, mask=masker.mask if masker is not None else None
        )
        cancel = CancelSignal()
        workdir: Path | None = None
        try:
            spec_data = job.spec or {}
            workdir = await self._workdir(job, spec_data.get("bundle"))
            inputs = await self._inputs(job, workdir, spec_data.get("inputs") or {})
            _obey(cancel, await self.gateway.start(job))
            spec = JobSpec(
                job_id=job.id,
                execution_id=job.execution_id,
                step_id=job.step_id,
                attempt=job.attempt,
                type=StepType(job.type),
                config=spec_data.get("config", {}),
                workdir=workdir,
                timeout=job.timeout,
                env={
                    "OPSFLOW_EXECUTION_ID": job.execution_id,
                    "OPSFLOW_STEP_ID": job.step_id,
                    "OPSFLOW_JOB_ID": job.id,
                    "OPSFLOW_ATTEMPT": str(job.attempt),
                    # Lets a restarted agent find and stop this job's processes.
                    MARK: str(self.work_root),
                },
                secrets=tuple(secrets),
                inputs=inputs,
                server_url=self.gateway.server_url,
                job_credentials=(job.id, job.lease_token) if job.lease_token else None,
                grace=self.stop_grace,
            )
            result = await self._execute(job, spec, sink, cancel)
        except StaleReport as exc:
            log.warning("job %s is no longer ours: %s", job.id, exc.message)
            if workdir is not None:
                await asyncio.to_thread(shutil.rmtree, workdir, ignore_errors=True)
            return
        except Exception as exc:  # an agent-side fault fails the attempt, visibly
            log.exception("job %s crashed in the agent", job.id)
            sink.write(LogStream.SYSTEM, f"[opsflow] agent error: {exc!r}", LogLevel.ERROR)
            result = StepResult(status=JobStatus.FAILED, error=f"agent error: {exc}")
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
                await self._ship(job, batch)
            await self.gateway.finish(
                job,
                status=result.status,
                outputs=outputs,
                error=error,
                retryable=result.retryable,
                exit_code=exit_code,
                lines=last,
                artifacts=artifacts,
            )
        except StaleReport as exc:
            log.warning("report for job %s refused: %s", job.id, exc.message)
        finally:
            if workdir is not None:
                # Removing a big tree takes a while: never on the event loop.
                await asyncio.to_thread(shutil.rmtree, workdir, ignore_errors=True)

    async def _inputs(
        self, job: Job, workdir: Path, wanted: dict[str, dict[str, str]]
    ) -> dict[str, Path]:
        """Fetch the files earlier steps left for this job into the job's own directory."""
        paths: dict[str, Path] = {}
        if not wanted:
            return paths
        folder = workdir / ".opsflow-inputs"
        folder.mkdir(parents=True, exist_ok=True)
        for name, ref in wanted.items():
            data = await self.gateway.fetch_artifact(job, ref["step"], ref["name"])
            path = folder / name
            await asyncio.to_thread(path.write_bytes, data)
            paths[name] = path
        return paths

    async def _execute(
        self, job: Job, spec: JobSpec, sink: BatchingLogSink, cancel: CancelSignal
    ) -> StepResult:
        executor = executor_for(spec.type)
        nudge = asyncio.Event()
        sink.on_line = lambda: nudge.set() if sink.pending >= FLUSH_LINES else None
        run = asyncio.create_task(executor.run(spec, sink, cancel))
        flusher = asyncio.create_task(self._flush_loop(job, sink, nudge, run))
        watcher = asyncio.create_task(self._watch_loop(job, cancel, run))
        try:
            return await run
        finally:
            # The flusher is never cut off mid-batch: a batch it took from the sink must be
            # stored before the final report, or its lines would be lost (a visible gap).
            nudge.set()
            watcher.cancel()
            await asyncio.gather(flusher, watcher, return_exceptions=True)

    async def _flush_loop(
        self, job: Job, sink: BatchingLogSink, nudge: asyncio.Event, run: asyncio.Task[Any]
    ) -> None:
        """Ship a batch whenever enough lines wait (or every ``FLUSH_INTERVAL``), whole batches
        back to back while the step prints faster than one batch per round trip."""
        while True:
            if not run.done() and not sink.full:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(nudge.wait(), FLUSH_INTERVAL)
            nudge.clear()
            if run.done():
                return  # what is left goes with the final report, in order
            batch = sink.take()
            if batch:
                await self._ship(job, batch)

    async def _ship(self, job: Job, batch: list[LogLine]) -> None:
        try:
            await self.gateway.append_logs(job, batch)
        except StaleReport:
            raise
        except Exception:
            log.exception("shipping logs of job %s failed; they will show as a gap", job.id)

    async def _watch_loop(self, job: Job, cancel: CancelSignal, run: asyncio.Task[Any]) -> None:
        """Heartbeat the lease; the reply (or an in-process wake-up) carries cancel requests."""
        async with self.gateway.watch_cancel(job) as sub:
            while not run.done():
                await sub.wait(self.heartbeat_interval)
                try:
                    notice = await self.gateway.heartbeat(job)
                except StaleReport as exc:
                    # Someone else owns this job now: stop working on it at once.
                    log.warning("lost the lease of job %s: %s", job.id, exc.message)
                    cancel.request(force=True)
                    return
                except Exception:
                    log.exception("heartbeat of job %s failed", job.id)
                    continue
                _obey(cancel, notice)


def _obey(cancel: CancelSignal, notice: CancelNotice) -> None:
    """Pass the server's stop request on to the executor; requests only ever strengthen."""
    if not notice.requested:
        return
    if notice.timed_out:
        cancel.time_out()
    elif not cancel.requested or (notice.force and not cancel.force):
        cancel.request(notice.force)


MAX_ARTIFACT_BYTES = 256 * 1024 * 1024


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
