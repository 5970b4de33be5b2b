"""``Runtime``: the runtime's services built once and wired together, and one door to them.

The work is done by small services that share one transaction runner (``transaction``) and
one reconciler (``reconciler``): ``executions`` (start, cancel, cleanup), ``agent_jobs`` (claim,
start, heartbeat, logs, end reports), ``control`` (approvals, retry, skip) and ``timers`` (due
timers, lost leases). Every public method is one transaction: it changes state, reconciles the
executions it touched under their row locks, commits, and only then publishes wake-ups. The
same methods serve the local agent (called in-process) and, through the API, remote agents.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from sqlalchemy.orm import Session

from opsflow.auth.connections import ConnectionVault
from opsflow.auth.secrets import SecretVault
from opsflow.engine.chains import DEFAULT_DEPTH_LIMIT
from opsflow.engine.model import DEFAULT_AGENT_LOST_LIMIT
from opsflow.runtime.agent_jobs import AgentJobs
from opsflow.runtime.bus import EventBus
from opsflow.runtime.changes import Changes
from opsflow.runtime.children import Children
from opsflow.runtime.control import RunControl
from opsflow.runtime.executions import Executions
from opsflow.runtime.launch import RunRequest
from opsflow.runtime.reconciler import Reconciler, RunSettings
from opsflow.runtime.roster import AgentRoster
from opsflow.runtime.timers import Timers
from opsflow.runtime.transaction import Transaction, Transactions
from opsflow.runtime.waiting import agents_for_queued
from opsflow.store.db import Database

__all__ = ["RunRequest", "Runtime"]

T = TypeVar("T")


class Runtime:
    """Applies the engine durably; any number of these may share one database."""

    def __init__(
        self,
        db: Database,
        bus: EventBus | None = None,
        *,
        lease_seconds: float = 15.0,
        clock: Callable[[], float] = time.time,
        notify_channels: Mapping[str, list[str]] | None = None,
        vault: SecretVault | None = None,
        connections: ConnectionVault | None = None,
        public_url: str | None = None,
        chain_depth: int = DEFAULT_DEPTH_LIMIT,
        agent_lost_limit: int = DEFAULT_AGENT_LOST_LIMIT,
    ) -> None:
        self.db = db
        self.bus = bus or EventBus()
        self.clock = clock
        self.vault = vault
        self.notify_channels = dict(notify_channels or {})
        self.public_url = public_url
        self.lease_seconds = lease_seconds
        self.roster = AgentRoster()

        self.transactions = Transactions(db, self.bus)
        self.reconciler = Reconciler(
            RunSettings(
                channels=self.notify_channels,
                secret_names=vault.names if vault else None,
                public_url=public_url,
                chain_depth=chain_depth,
                agent_lost_limit=agent_lost_limit,
                presence=lambda session, now: agents_for_queued(
                    session, self.roster.residents(), now, lease_seconds
                ),
            ),
            clock,
        )
        self.executions = Executions(self.transactions, self.reconciler, clock)
        # Workflow steps: children start, end and are cancelled in their parents' transactions.
        self.reconciler.follow(
            Children(self.executions.start_in, self.executions.cancel_in, self.reconciler.reconcile)
        )
        self.jobs = AgentJobs(
            db,
            self.transactions,
            self.reconciler,
            vault=vault,
            connections=connections,
            lease_seconds=lease_seconds,
            clock=clock,
        )
        self.control = RunControl(self.transactions, self.reconciler, clock)
        self.timers = Timers(db, self.transactions, self.reconciler, clock)

        # The services' entry points, under the names callers (API, agents, triggers) use.
        self.start_execution = self.executions.start
        self.cancel = self.executions.cancel
        self.reconcile_all_active = self.executions.reconcile_all_active
        self.claim = self.jobs.claim
        self.start_job = self.jobs.start_job
        self.heartbeat = self.jobs.heartbeat
        self.append_logs = self.jobs.append_logs
        self.fetch_artifact = self.jobs.fetch_artifact
        self.finish_job = self.jobs.finish_job
        self.finish_jobs = self.jobs.finish_jobs
        self.hand_back = self.jobs.hand_back
        self.declare_lost = self.jobs.declare_lost
        self.masker_for = self.jobs.masker_for
        self.respond = self.control.respond
        self.retry_step = self.control.retry_step
        self.skip_step = self.control.skip_step
        self.retry_item = self.control.retry_item
        self.skip_item = self.control.skip_item
        self.cancel_items = self.control.cancel_items
        self.fire_due_timers = self.timers.fire_due_timers
        self.expire_leases = self.timers.expire_leases
        self.next_wake = self.timers.next_wake

    def transact(self, fn: Callable[[Session, Changes], T]) -> T:
        """Run ``fn(session, changes)`` in one transaction (see `Transactions.run`)."""
        return self.transactions.run(lambda tx: fn(tx.session, tx.changes))

    def start_in(
        self,
        session: Session,
        changes: Changes,
        request: RunRequest,
        *,
        execution_id: str | None = None,
    ) -> str:
        """`start_execution` inside the caller's transaction (from `transact`), so a trigger
        can commit the execution together with the row that deduplicates its firing (whose
        ``execution_id``, from `new_id`, the caller wrote first)."""
        return self.executions.start_in(
            Transaction(session, changes), request, execution_id=execution_id
        )
