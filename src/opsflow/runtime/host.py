"""The runtime pieces that live inside one server process, started and stopped together.

``create_app`` builds one of these in its lifespan: the runtime (shared by API routes), the
timer thread, and, unless disabled, the local agent, which serves jobs through the same
claim / run / report path a remote agent uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import opsflow
from opsflow.agent.identity import AgentDirInUse, AgentDirLock, lock_agent_dir, persistent_agent_id
from opsflow.agent.loop import Agent
from opsflow.auth.connections import ConnectionVault
from opsflow.auth.secrets import SecretVault
from opsflow.engine.chains import DEFAULT_DEPTH_LIMIT
from opsflow.engine.model import DEFAULT_AGENT_LOST_LIMIT
from opsflow.errors import Conflict
from opsflow.runtime.agent_service import AgentService, InProcessClient
from opsflow.runtime.outbox import OutboxSender, stop_task
from opsflow.runtime.pg_bus import bus_for
from opsflow.runtime.roster import AgentPresence
from opsflow.runtime.service import Runtime
from opsflow.runtime.timers import TimerThread
from opsflow.store.db import Database
from opsflow.triggers.chain import Chains

if TYPE_CHECKING:
    from opsflow.api.services import Services

log = logging.getLogger(__name__)

LOCAL_POOLS = ("default",)


def local_agent_presence(agent_id: str, concurrency: int) -> AgentPresence:
    """The in-process agent as the roster sees it: pool default, no labels."""
    return AgentPresence(agent_id, LOCAL_POOLS, {}, capacity=concurrency)


class RuntimeHost:
    def __init__(
        self,
        db: Database,
        *,
        work_dir: Path,
        local_agent: bool = True,
        background: bool = True,
        agent_id: str | None = None,
        concurrency: int = 4,
        lease_seconds: float = 15.0,
        heartbeat_interval: float = 5.0,
        stop_grace: float | None = None,
        notify_channels: Mapping[str, list[str]] | None = None,
        server_url: str | None = None,
        public_url: str | None = None,
        vault: SecretVault | None = None,
        connections: ConnectionVault | None = None,
        chain_depth: int = DEFAULT_DEPTH_LIMIT,
        agent_lost_limit: int = DEFAULT_AGENT_LOST_LIMIT,
    ) -> None:
        # Across replicas through LISTEN/NOTIFY on PostgreSQL; in-process on SQLite.
        self.bus = bus_for(db.dialect, db.url)
        self.runtime = Runtime(
            db,
            self.bus,
            lease_seconds=lease_seconds,
            notify_channels=notify_channels,
            vault=vault,
            connections=connections,
            # Links in messages: where people open the server (its own address when not told).
            public_url=public_url or server_url,
            chain_depth=chain_depth,
            agent_lost_limit=agent_lost_limit,
        )
        # Workflow triggers fire in the transaction in which the run they follow ends.
        self.runtime.reconciler.follow(Chains(self.runtime))
        self.timers = TimerThread(self.runtime.timers, self.bus, lease_seconds=lease_seconds)
        # The server's end of the agent protocol: the API's agent routes and the local agent
        # share it (and so its batching of reports).
        self.agent_service = AgentService(
            self.runtime.jobs,
            self.bus,
            lease_seconds=lease_seconds,
            heartbeat_seconds=heartbeat_interval,
        )
        self.agent: Agent | None = None
        if local_agent:
            self.agent = Agent(
                InProcessClient(self.agent_service, server_url),
                # The server's own id (kept in its data dir); a fresh one when none is given.
                agent_id=agent_id or f"local-{uuid.uuid4().hex[:12]}",
                pools=list(LOCAL_POOLS),
                concurrency=concurrency,
                work_root=work_dir,
                heartbeat_interval=heartbeat_interval,
                stop_grace=stop_grace,
                version=opsflow.__version__,
                hostname=socket.gethostname(),
                # Its files are read from this server's own database: the claim marks a job
                # running at once, which saves each job the start's transaction.
                start_on_claim=True,
            )
        # The work in the background (timers, lease sweeps, the outbox, resuming runs at
        # start); off on an API-only replica, where other replicas do it.
        self.background = background
        self._agent_task: asyncio.Task[None] | None = None
        self.outbox = OutboxSender(self.runtime)
        self._outbox_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.bus.start()
        if self.background:
            count = await asyncio.to_thread(self.runtime.reconcile_all_active)
            if count:
                log.info("resumed %d unfinished executions", count)
            self.timers.start()
            self._outbox_task = asyncio.create_task(self.outbox.run(), name="opsflow-outbox")
        if self.agent is not None:
            self.runtime.roster.serve(
                local_agent_presence(self.agent.agent_id, self.agent.concurrency)
            )
            self._agent_task = asyncio.create_task(self.agent.run(), name="opsflow-local-agent")

    async def stop(self) -> None:
        if self._outbox_task is not None:
            self.outbox.stop()
            await stop_task(self._outbox_task)
        if self.agent is not None and self._agent_task is not None:
            self.agent.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._agent_task, timeout=30)
            self.runtime.roster.leave(self.agent.agent_id)
        if self.background:
            await asyncio.to_thread(self.timers.stop)
        await asyncio.to_thread(self.bus.stop)


def lock_data_dir(data_dir: Path) -> AgentDirLock:
    """The local agent's hold on the data dir (see `lock_agent_dir`): its id file and its
    work dir are this server's alone. Raises `Conflict` naming the data dir and the holder."""
    try:
        return lock_agent_dir(data_dir)
    except AgentDirInUse as exc:
        raise Conflict(
            f"data dir {data_dir} is in use by another opsflow server ({exc.holder_text}), "
            "whose local agent would share this one's id and kill its jobs; give each server "
            "its own --data-dir, or run the others with --no-local-agent (or --role api)"
        ) from None


@asynccontextmanager
async def runtime_extension(services: Services) -> AsyncIterator[RuntimeHost]:
    """The server's runtime as an app extension: started after bootstrap, stopped first."""
    settings = services.settings
    data_dir = Path(settings.data_dir).resolve()
    local_agent = settings.local_agent and settings.role.does_work
    # Before the id is read and before the local agent sweeps <data-dir>/work: another
    # server's running jobs are not a dead one's leftovers.
    hold = await asyncio.to_thread(lock_data_dir, data_dir) if local_agent else None
    try:
        async with _hosted(services, data_dir, local_agent) as host:
            yield host
    finally:
        if hold is not None:
            hold.release()


@asynccontextmanager
async def _hosted(
    services: Services, data_dir: Path, local_agent: bool
) -> AsyncIterator[RuntimeHost]:
    settings = services.settings
    host = RuntimeHost(
        services.db,
        work_dir=data_dir / "work",
        local_agent=local_agent,
        background=settings.role.does_work,
        # This server's own: a restart declares lost only the attempts it held itself. Kept
        # only where a local agent runs: a server without one holds no attempt, and an
        # agent-id file in its data dir would name an agent that never existed.
        agent_id=await asyncio.to_thread(persistent_agent_id, data_dir) if local_agent else None,
        concurrency=settings.local_agent_concurrency,
        notify_channels=settings.notify_channels,
        lease_seconds=settings.lease_seconds,
        heartbeat_interval=settings.heartbeat_seconds,
        stop_grace=settings.stop_grace_seconds,
        server_url=settings.base_url,
        public_url=settings.public_base,
        vault=services.extra.get("secrets"),
        connections=services.extra.get("connections"),
        chain_depth=settings.chain_depth,
        agent_lost_limit=settings.agent_lost_limit,
    )
    services.extra["runtime"] = host
    await host.start()
    try:
        yield host
    finally:
        await host.stop()
