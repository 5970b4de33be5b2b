"""The claim / run / report path, as an agent sees it.

``Gateway`` is all an agent needs from a server. ``LocalGateway`` is the in-process one (the
server's own agent calls the runtime directly, in worker threads so the event loop never
blocks on the database); a remote agent's gateway speaks the same calls over HTTP.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

from opsflow.errors import StaleReport
from opsflow.runtime.agent_jobs import JobReport
from opsflow.runtime.service import Runtime
from opsflow.status import JobStatus
from opsflow.store import bundles as bundles_store
from opsflow.store.jobs import CancelNotice, Job
from opsflow.store.logs import LogLine


class Gateway(Protocol):
    async def claim(
        self, *, agent_id: str, pools: list[str], labels: dict[str, str], limit: int
    ) -> list[Job]: ...
    async def declare_lost(self, agent_id: str) -> int: ...
    async def start(self, job: Job) -> CancelNotice: ...
    async def heartbeat(self, job: Job) -> CancelNotice: ...
    async def append_logs(self, job: Job, lines: list[LogLine]) -> None: ...
    async def finish(
        self,
        job: Job,
        *,
        status: JobStatus,
        outputs: dict[str, Any],
        error: str | None,
        retryable: bool,
        exit_code: int | None,
        lines: list[LogLine],
        artifacts: dict[str, bytes],
    ) -> None: ...
    async def materialize(self, bundle_digest: str, dest: Path) -> None: ...
    async def fetch_artifact(self, job: Job, step_id: str, name: str) -> bytes: ...
    @property
    def server_url(self) -> str | None: ...
    async def wait_for_work(self, timeout: float) -> None: ...
    def watch_cancel(self, job: Job) -> AbstractAsyncContextManager[Waiter]: ...


class Waiter(Protocol):
    async def wait(self, timeout: float) -> bool: ...


class LocalGateway:
    """The server's own agent: same calls, no network."""

    def __init__(self, runtime: Runtime, server_url: str | None = None) -> None:
        self.runtime = runtime
        self._server_url = server_url
        self._jobs_sub: Any = None
        self._reports: list[tuple[JobReport, asyncio.Future[StaleReport | None]]] = []
        self._reporter: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._jobs_sub = self.runtime.bus.watch_jobs()
        await self._jobs_sub.__aenter__()

    async def close(self) -> None:
        if self._jobs_sub is not None:
            await self._jobs_sub.__aexit__(None, None, None)
            self._jobs_sub = None

    async def claim(
        self, *, agent_id: str, pools: list[str], labels: dict[str, str], limit: int
    ) -> list[Job]:
        if self._jobs_sub is not None:
            # Wake-ups sent before this claim began are answered by it: forget them, so the
            # loop does not claim again for nothing. Later ones still wake it.
            self._jobs_sub.clear()
        return await asyncio.to_thread(
            self.runtime.claim, agent_id=agent_id, pools=pools, labels=labels, limit=limit
        )

    async def declare_lost(self, agent_id: str) -> int:
        return await asyncio.to_thread(self.runtime.declare_lost, agent_id)

    async def start(self, job: Job) -> CancelNotice:
        assert job.lease_token is not None
        return await asyncio.to_thread(self.runtime.start_job, job, job.lease_token)

    async def heartbeat(self, job: Job) -> CancelNotice:
        assert job.lease_token is not None
        return await asyncio.to_thread(self.runtime.heartbeat, job.id, job.lease_token)

    async def append_logs(self, job: Job, lines: list[LogLine]) -> None:
        assert job.lease_token is not None
        await asyncio.to_thread(self.runtime.append_logs, job, job.lease_token, lines)

    async def finish(
        self,
        job: Job,
        *,
        status: JobStatus,
        outputs: dict[str, Any],
        error: str | None,
        retryable: bool,
        exit_code: int | None,
        lines: list[LogLine],
        artifacts: dict[str, bytes],
    ) -> None:
        assert job.lease_token is not None
        report = JobReport(
            artifacts=artifacts,
            job=job,
            token=job.lease_token,
            status=status,
            outputs=outputs,
            error=error,
            retryable=retryable,
            exit_code=exit_code,
            lines=lines,
        )
        done: asyncio.Future[StaleReport | None] = asyncio.get_running_loop().create_future()
        self._reports.append((report, done))
        if self._reporter is None or self._reporter.done():
            self._reporter = asyncio.create_task(self._report_all())
        problem = await done
        if problem is not None:
            raise problem

    async def _report_all(self) -> None:
        """Write every waiting report in one transaction; repeat while more arrived meanwhile."""
        while self._reports:
            batch, self._reports = self._reports, []
            try:
                results = await asyncio.to_thread(
                    self.runtime.finish_jobs, [report for report, _ in batch]
                )
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (_, done), result in zip(batch, results, strict=True):
                if not done.done():
                    done.set_result(result)

    @property
    def server_url(self) -> str | None:
        return self._server_url

    async def fetch_artifact(self, job: Job, step_id: str, name: str) -> bytes:
        assert job.lease_token is not None
        return await asyncio.to_thread(
            self.runtime.fetch_artifact, job, job.lease_token, step_id, name
        )

    async def materialize(self, bundle_digest: str, dest: Path) -> None:
        def work() -> None:
            with self.runtime.db.session() as session:
                bundles_store.materialize_bundle(session, bundle_digest, dest)

        await asyncio.to_thread(work)

    async def wait_for_work(self, timeout: float) -> None:
        if self._jobs_sub is None:
            await self.open()
        await self._jobs_sub.wait(timeout)

    def watch_cancel(self, job: Job) -> AbstractAsyncContextManager[Waiter]:
        """In-process, a cancel wakes the job at once instead of at its next heartbeat."""
        return self.runtime.bus.watch_cancel(job.id)
