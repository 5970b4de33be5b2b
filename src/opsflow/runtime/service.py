"""The runtime's entry points: start and cancel executions, timers and leases; with the
agents' jobs (``agent_jobs``) and people's control of a run (``control``) mixed in.

Every method is one transaction: it changes state, reconciles the executions it touched under
their row locks, commits, and only then publishes wake-ups. The same methods serve the local
agent (called in-process) and, through the API, remote agents.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from opsflow.auth.masking import Masker
from opsflow.auth.secrets import SecretVault
from opsflow.engine.model import CancelMode
from opsflow.errors import Conflict
from opsflow.runtime import cleanup, events
from opsflow.runtime.agent_jobs import AgentJobs
from opsflow.runtime.bus import EventBus
from opsflow.runtime.changes import Changes
from opsflow.runtime.control import RunControl
from opsflow.runtime.reconciler import Ended, RunSettings, new_id, reconcile
from opsflow.runtime.roster import AgentRoster
from opsflow.status import ExecutionStatus, StepStatus
from opsflow.store import jobs as jobs_store
from opsflow.store import runs as runs_store
from opsflow.store.db import Database
from opsflow.store.runs import Execution

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRequest:
    """Everything needed to start one execution of a pinned definition."""

    workflow_id: str
    definition: dict[str, Any]
    params: dict[str, Any]
    version: int | None = None
    bundle_digest: str | None = None
    test_run: bool = False
    trigger_type: str = "manual"
    trigger: dict[str, Any] | None = None
    started_by: str | None = None


class Runtime(AgentJobs, RunControl):
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
        server_url: str | None = None,
    ) -> None:
        self.db = db
        self.server_url = server_url
        self.vault = vault
        self.notify_channels = dict(notify_channels or {})
        self._maskers: dict[str, Masker] = {}
        self.bus = bus or EventBus()
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.roster = AgentRoster(ttl=max(30.0, 2 * lease_seconds))

    # -- plumbing --------------------------------------------------------------------------

    def transact(self, fn: Callable[[Session, Changes], T]) -> T:
        """Run ``fn`` in one transaction, publish its changes after the commit.

        A transaction the database aborted to break a deadlock (or a SQLite lock wait that
        ran out) is run again from the start, a few times, before the error is let through.
        """
        for attempt in range(1, 4):
            changes = Changes()
            try:
                with self.db.session() as session:
                    result = fn(session, changes)
            except Exception as exc:
                if attempt < 3 and self.db.is_transient(exc):
                    log.warning("transaction aborted (%s); retrying", exc.__class__.__name__)
                    continue
                raise
            self.publish(changes)
            return result
        raise AssertionError("unreachable")

    def publish(self, changes: Changes) -> None:
        if changes.executions:
            self.bus.executions_changed(changes.executions)
        if changes.finished:
            self.bus.executions_finished(changes.finished)
        if changes.jobs_queued:
            self.bus.jobs_queued()
        if changes.cancelled_jobs:
            self.bus.cancel_requested(changes.cancelled_jobs)
        if changes.notifications:
            self.bus.notifications_queued()
        if changes.earliest_timer is not None:
            self.bus.timer_set(changes.earliest_timer)

    def _reconcile(
        self,
        session: Session,
        execution_id: str,
        changes: Changes,
        *,
        admit: bool = False,
        locked: Execution | None = None,
        ended: Ended | None = None,
    ) -> None:
        now = self.clock()
        result = reconcile(
            session,
            execution_id,
            now,
            admit=admit,
            locked=locked,
            ended=ended,
            settings=RunSettings(
                channels=self.notify_channels,
                secret_names=self.vault.names if self.vault else None,
                server_url=self.server_url,
            ),
        )
        changes.merge(result)
        for finished in result.finished:
            self._admit_queued(session, finished, changes)

    # -- executions ------------------------------------------------------------------------

    def start_execution(self, request: RunRequest) -> str:
        """Create the execution and start what can start, in one commit."""
        return self.transact(lambda session, changes: self.start_in(session, changes, request))

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
        # Whole microseconds, so the time people see (ISO 8601) is the time stored and
        # filtering by it finds the run.
        now = round(self.clock(), 6)
        execution_id = execution_id or new_id()
        steps = [
            {
                "step_id": s["id"],
                "position": i,
                "type": s["type"],
                "status": StepStatus.PENDING.value,
                "retry_base": 0,
                "user_skipped": False,
                "outputs": {},
            }
            for i, s in enumerate(request.definition.get("steps", []))
        ]
        runs_store.insert_execution(
            session,
            {
                "id": execution_id,
                "workflow_id": request.workflow_id,
                "version": request.version,
                "test_run": request.test_run,
                "definition": request.definition,
                "bundle_digest": request.bundle_digest,
                "status": ExecutionStatus.PENDING.value,
                "status_reason": "",
                "trigger_type": request.trigger_type,
                "trigger": request.trigger or {},
                "params": request.params,
                "started_by": request.started_by,
                "created_at": now,
            },
            steps,
        )
        events.write_one(
            session,
            execution_id,
            now,
            events.ExecutionChanged(ExecutionStatus.PENDING, events.CREATED_REASON),
        )
        changes.executions.add(execution_id)
        if self._admit(session, request, execution_id, changes):
            self._reconcile(session, execution_id, changes, admit=True)
        return execution_id

    def _admit(
        self, session: Session, request: RunRequest, execution_id: str, changes: Changes
    ) -> bool:
        """The workflow's concurrency policy: start now, or wait in its queue."""
        from opsflow.runtime.admission import admit_new

        return admit_new(session, request, execution_id, changes, self)

    def _admit_queued(self, session: Session, finished_id: str, changes: Changes) -> None:
        from opsflow.runtime.admission import admit_queued

        for execution_id in admit_queued(session, finished_id):
            self._reconcile(session, execution_id, changes, admit=True)

    def cancel(
        self, execution_id: str, *, mode: CancelMode, by: str | None, reason: str = ""
    ) -> Execution:
        """Record the cancel request and let the engine act on it at once.

        Idempotent, and requests only ever strengthen: graceful may become forced, and a
        request for cleanup stays even when a later one forces the cancel. On an execution
        that has ended, only ``CLEANUP`` is accepted: nothing is left to cancel, and the
        cleanup jobs start at once (see `request_cleanup_after_end`). Raises `Conflict` for
        any other mode on an ended execution.
        """

        def work(session: Session, changes: Changes) -> Execution:
            ex = runs_store.lock_execution(session, execution_id)
            if ex.status.terminal:
                if mode != CancelMode.CLEANUP:
                    raise Conflict(
                        f"execution {execution_id} already ended as {ex.status.value}; "
                        "to undo what it applied, ask for cleanup (opsflow cancel "
                        f"{execution_id} --cleanup)"
                    )
                self._cleanup_after_end(session, ex, by, reason, changes)
                return runs_store.get_execution(session, execution_id)
            engine_mode = CancelMode.FORCE if mode == CancelMode.FORCE else CancelMode.GRACEFUL
            values: dict[str, Any] = {}
            if ex.cancel_mode is None:
                values.update(
                    cancel_mode=engine_mode.value,
                    cancel_requested_at=self.clock(),
                    cancel_reason=reason or (f"cancelled by {by}" if by else "cancelled"),
                    cancel_by=by,
                )
            elif engine_mode == CancelMode.FORCE and ex.cancel_mode != CancelMode.FORCE.value:
                values["cancel_mode"] = CancelMode.FORCE.value
            if mode == CancelMode.CLEANUP and not ex.cancel_cleanup:
                values["cancel_cleanup"] = True
            if values:
                runs_store.update_execution(session, execution_id, **values)
            self._reconcile(session, execution_id, changes)
            return runs_store.get_execution(session, execution_id)

        return self.transact(work)

    def _cleanup_after_end(
        self,
        session: Session,
        ex: Execution,
        by: str | None,
        reason: str,
        changes: Changes,
    ) -> None:
        """Cleanup of an ended execution: the undo jobs of its applied steps, newest first.

        Idempotent; refused (`Conflict`) when no step of the execution has anything to undo.
        """
        if ex.cancel_cleanup:
            return  # asked before: the cleanup jobs are queued or done
        if not cleanup.undoable_steps(ex, runs_store.list_steps(session, ex.id)):
            raise Conflict(
                f"execution {ex.id} has nothing to clean up: no step that can be undone "
                "(a terraform apply) started"
            )
        now = self.clock()
        values: dict[str, Any] = {"cancel_cleanup": True}
        if ex.cancel_requested_at is None:
            values.update(
                cancel_requested_at=now,
                cancel_reason=reason or (f"cleanup requested by {by}" if by else "cleanup"),
                cancel_by=by,
            )
        runs_store.update_execution(session, ex.id, **values)
        runs_store.add_engine_log(
            session,
            [
                {
                    "execution_id": ex.id,
                    "step_id": None,
                    "at": now,
                    "message": f"cleanup requested by {by or 'someone'} after the execution "
                    f"ended {ex.status.value}",
                }
            ],
        )
        changes.executions.add(ex.id)
        self._reconcile(session, ex.id, changes)

    def reconcile_all_active(self) -> int:
        """At start-up: bring every unfinished execution up to date (cheap, and it makes a
        restart independent of which wake-ups were lost with the old process)."""
        ids = self.transact(lambda s, c: runs_store.active_execution_ids(s))
        for execution_id in ids:
            self.transact(lambda s, c, eid=execution_id: self._reconcile(s, eid, c))  # type: ignore[misc]
        return len(ids)

    # -- timers and leases -----------------------------------------------------------------

    def fire_due_timers(self) -> int:
        now = self.clock()
        with self.db.read() as session:
            due = runs_store.due_timers(session, now)
        fired = 0
        for kind, key, _ in due:

            def work(session: Session, changes: Changes, kind: str = kind, key: str = key) -> bool:
                # Lock order everywhere: the execution first, then its rows (timer, jobs).
                runs_store.lock_execution(session, key)
                if not runs_store.take_timer(session, kind, key, self.clock()):
                    return False  # another replica fired it, or it moved
                self._reconcile(session, key, changes)
                return True

            fired += int(self.transact(work))
        return fired

    def expire_leases(self) -> int:
        """Jobs whose agent stopped heartbeating become failed attempts ("agent lost")."""
        now = self.clock()
        with self.db.read() as session:
            expired = jobs_store.expired_leases(session, now)
        count = 0
        for job_id, execution_id in expired:

            def work(
                session: Session, changes: Changes, job_id: str = job_id, eid: str = execution_id
            ) -> bool:
                runs_store.lock_execution(session, eid)
                if not jobs_store.fail_lost_job(session, job_id, self.clock()):
                    return False
                self._reconcile(session, eid, changes)
                return True

            count += int(self.transact(work))
        return count

    def next_wake(self) -> float | None:
        with self.db.read() as session:
            times = [
                t
                for t in (
                    runs_store.next_timer_due(session),
                    jobs_store.next_lease_expiry(session),
                )
                if t is not None
            ]
        return min(times) if times else None
