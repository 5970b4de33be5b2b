"""What an agent needs from a server: the protocol's calls, one method each.

Two implementations: the server's own agent calls its runtime in-process
(``opsflow.runtime.agent_service.InProcessClient``), ``opsflow agent`` speaks HTTP
(`opsflow.agent.http_client.HttpClient`). The loop cannot tell them apart.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

from opsflow.agent.protocol import (
    CancelNotice,
    ClaimedJob,
    ClaimRequest,
    JobRef,
    JobReport,
    LogBatch,
    Registered,
    Registration,
)


class Waiter(Protocol):
    async def wait(self, timeout: float) -> bool:
        """Until woken (True) or ``timeout`` seconds pass (False)."""
        ...


class AgentClient(Protocol):
    """The agent protocol's calls; each raises `opsflow.errors.StaleReport` when the server
    refuses a reference to a lease that is no longer current."""

    @property
    def server_url(self) -> str | None:
        """Where job processes reach the server (e.g. Terraform's state backend)."""
        ...

    async def register(self, registration: Registration) -> Registered: ...

    async def claim(self, request: ClaimRequest) -> list[ClaimedJob]:
        """Jobs leased to this agent; waits up to ``request.wait`` seconds for one."""
        ...

    async def start(self, job: JobRef) -> CancelNotice: ...

    async def heartbeat(self, job: JobRef) -> CancelNotice: ...

    async def send_logs(self, batch: LogBatch) -> None: ...

    async def report(self, report: JobReport) -> None: ...

    async def hand_back(self, job: JobRef) -> None: ...

    async def leave(self, agent_id: str) -> None:
        """The agent stops: the server shows it offline at once."""
        ...

    async def fetch_bundle(self, digest: str, dest: Path) -> None:
        """Write the workflow files with content hash ``digest`` under ``dest``."""
        ...

    async def fetch_artifact(self, job: JobRef, step_id: str, name: str) -> bytes: ...

    def watch_cancel(self, job_id: str) -> AbstractAsyncContextManager[Waiter]:
        """A waiter woken when someone asks to stop the job, if the client can tell sooner
        than the next heartbeat's answer (in-process); otherwise it only times out."""
        ...
