"""Executions as a whole: start one (through its workflow's concurrency policy), cancel it,
ask for cleanup after it ended, and bring every unfinished one up to date at start-up.

Each public method is one transaction (``Transactions.run``); the ``*_in`` form works inside a
caller's transaction, so a trigger commits the run with the row that deduplicates its firing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opsflow.engine.model import CancelMode
from opsflow.errors import Conflict
from opsflow.runtime import admission, cleanup, events
from opsflow.runtime.definitions import workflow_model
from opsflow.runtime.launch import RunRequest
from opsflow.runtime.reconciler import Reconciler, new_id
from opsflow.runtime.run_notify import UnstartedEnd, queue_run_end
from opsflow.runtime.transaction import Transaction, Transactions
from opsflow.status import ExecutionStatus, StepStatus
from opsflow.store import audit
from opsflow.store import runs as runs_store
from opsflow.store.runs import Execution


class Executions:
    """Starts, cancels and cleans up executions; any number may share one database."""

    def __init__(
        self,
        transactions: Transactions,
        reconciler: Reconciler,
        clock: Callable[[], float],
    ) -> None:
        self.transactions = transactions
        self.reconciler = reconciler
        self.clock = clock

    def start(self, request: RunRequest) -> str:
        """Create the execution and start what can start, in one commit."""
        return self.transactions.run(lambda tx: self.start_in(tx, request))

    def start_in(
        self, tx: Transaction, request: RunRequest, *, execution_id: str | None = None
    ) -> str:
        """`start` inside the caller's transaction (``execution_id`` when the caller chose it
        with `new_id` and wrote it first)."""
        # Whole microseconds, so the time people see (ISO 8601) is the time stored and
        # filtering by it finds the run.
        now = round(self.clock(), 6)
        execution_id = execution_id or new_id()
        steps: list[dict[str, Any]] = [
            {
                "step_id": s.id,
                "position": i,
                "type": s.type.value,
                "status": StepStatus.PENDING.value,
                "retry_base": 0,
                "user_skipped": False,
                "outputs": {},
                "needs_open": len(s.needs),  # no step has ended yet (see engine.advance)
            }
            for i, s in enumerate(workflow_model(request.definition).steps)
        ]
        runs_store.insert_execution(
            tx.session,
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
                "chain": list(request.chain),
                "parent_execution_id": request.parent_execution_id,
                "parent_step_id": request.parent_step_id,
                "outputs": {},
                "steps_active": 0,
                "approvals_waiting": 0,
                "steps_failed": 0,
            },
            steps,
        )
        events.write_one(
            tx.session,
            execution_id,
            now,
            events.ExecutionChanged(ExecutionStatus.PENDING, events.CREATED_REASON),
        )
        tx.changes.executions.add(execution_id)
        if request.started_by and request.trigger_type == "manual" and not request.parent_step_id:
            detail = {"workflow": request.workflow_id, "version": request.version}
            if request.test_run:
                detail["test_run"] = True
            audit.record(tx.session, request.started_by, "execution.run", execution_id, detail)
        # The workflow's concurrency policy: start now, or wait in its queue.
        now = self.clock()
        admitted = admission.admit_new(tx.session, request, execution_id, now)
        if admitted.ended:
            # Skipped by the concurrency policy: it ended cancelled, and says so if asked.
            facts = self.reconciler.settings.server_facts
            queue_run_end(UnstartedEnd(tx.session, execution_id, now, tx.changes, facts))
        for superseded in admitted.superseded:
            self.reconciler.reconcile(tx, superseded)
        if admitted.start:
            self.reconciler.reconcile(tx, execution_id, admit=True)
        return execution_id

    def cancel(
        self, execution_id: str, *, mode: CancelMode, by: str | None, reason: str = ""
    ) -> Execution:
        """Record the cancel request and let the engine act on it at once.

        Idempotent, and requests only ever strengthen: graceful may become forced, and a
        request for cleanup stays even when a later one forces the cancel. On an execution
        that has ended, only ``CLEANUP`` is accepted: nothing is left to cancel, and the
        cleanup jobs start at once (see `_cleanup_after_end`). Raises `Conflict` for any
        other mode on an ended execution.
        """

        def work(tx: Transaction) -> Execution:
            cancelled = self.cancel_in(tx, execution_id, mode=mode, by=by, reason=reason)
            if by:  # a person's request (a parent's cancel reaching its child is not)
                detail = {"mode": mode.value, "reason": reason} if reason else {"mode": mode.value}
                audit.record(tx.session, by, "execution.cancel", execution_id, detail)
            return cancelled

        return self.transactions.run(work)

    def cancel_in(
        self,
        tx: Transaction,
        execution_id: str,
        *,
        mode: CancelMode,
        by: str | None,
        reason: str = "",
    ) -> Execution:
        """`cancel` inside the caller's transaction (a parent's cancel reaching its child)."""
        ex = runs_store.lock_execution(tx.session, execution_id)
        if ex.status.terminal:
            if mode != CancelMode.CLEANUP:
                raise Conflict(
                    f"execution {execution_id} already ended as {ex.status.value}"
                    + self._cleanup_hint(tx, ex)
                )
            self._cleanup_after_end(tx, ex, by, reason)
            return runs_store.get_execution(tx.session, execution_id)
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
            runs_store.update_execution(tx.session, execution_id, **values)
        self.reconciler.reconcile(tx, execution_id)
        return runs_store.get_execution(tx.session, execution_id)

    def _cleanup_hint(self, tx: Transaction, ex: Execution) -> str:
        """What an ended execution offers to undo, for a refused cancel: ``--cleanup`` only
        when a step that can be undone (a terraform apply) started and cleanup was not asked
        for yet; nothing when there is nothing to clean up."""
        if ex.cancel_cleanup:
            return f"; its cleanup was asked for already (see opsflow executions show {ex.id})"
        undoable = cleanup.undoable_steps(ex, runs_store.list_steps(tx.session, ex.id))
        if not undoable:
            return ""
        names = ", ".join(s.step_id for s in undoable)
        return (
            f"; to undo what it applied ({names}), ask for cleanup "
            f"(opsflow cancel {ex.id} --cleanup)"
        )

    def _cleanup_after_end(
        self, tx: Transaction, ex: Execution, by: str | None, reason: str
    ) -> None:
        """Cleanup of an ended execution: the undo jobs of its applied steps, newest first.

        Idempotent; refused (`Conflict`) when no step of the execution has anything to undo.
        """
        if ex.cancel_cleanup:
            return  # asked before: the cleanup jobs are queued or done
        if not cleanup.undoable_steps(ex, runs_store.list_steps(tx.session, ex.id)):
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
        runs_store.update_execution(tx.session, ex.id, **values)
        runs_store.add_engine_log(
            tx.session,
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
        tx.changes.executions.add(ex.id)
        self.reconciler.reconcile(tx, ex.id)

    def reconcile_all_active(self) -> int:
        """At start-up: bring every unfinished execution up to date (cheap, and it makes a
        restart independent of which wake-ups were lost with the old process)."""
        ids = self.transactions.run(lambda tx: runs_store.active_execution_ids(tx.session))
        for execution_id in ids:

            def work(tx: Transaction, eid: str = execution_id) -> None:
                self.reconciler.reconcile(tx, eid)

            self.transactions.run(work)
        return len(ids)
