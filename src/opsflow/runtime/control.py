"""People's decisions on a run: answer an approval, retry a failed step (or from it), skip
it. Each is one transaction under the execution's row lock, checked by the engine's pure
rules (``engine.control``), recorded in the engine log with who did it, then reconciled."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opsflow.engine import control
from opsflow.engine.control import UnknownStep
from opsflow.engine.model import ExecutionState, Graph, StepState
from opsflow.errors import Conflict, NotFound
from opsflow.runtime import approvals, events
from opsflow.runtime.approvals import Responder
from opsflow.runtime.reconciler import Reconciler, execution_state
from opsflow.runtime.transaction import Transaction, Transactions
from opsflow.status import ExecutionStatus, StepStatus, StepType
from opsflow.store import audit
from opsflow.store import runs as runs_store
from opsflow.store import users as users_store
from opsflow.store.approvals import Approval


class RunControl:
    """People's control of a run: approvals, retry and skip."""

    def __init__(
        self,
        transactions: Transactions,
        reconciler: Reconciler,
        clock: Callable[[], float],
    ) -> None:
        self.transactions = transactions
        self.reconciler = reconciler
        self.clock = clock

    def respond(
        self,
        execution_id: str,
        step_id: str,
        *,
        user: str,
        approve: bool,
        note: str | None = None,
        via: str = "api",
    ) -> tuple[Approval, bool]:
        """Approve or reject a waiting gate; returns the gate and whether this answer decided it."""

        def work(tx: Transaction) -> tuple[Approval, bool]:
            who = Responder(user, frozenset(users_store.teams_of(tx.session, user)))
            action = "approval.approve" if approve else "approval.reject"
            detail = {"via": via, "note": note} if note else {"via": via}
            answered = approvals.respond(
                tx.session,
                execution_id,
                step_id,
                who,
                approve=approve,
                note=note,
                via=via,
                now=self.clock(),
                reconcile=lambda: self.reconciler.reconcile(tx, execution_id),
            )
            audit.record(tx.session, user, action, f"{execution_id}/{step_id}", detail)
            return answered

        return self.transactions.run(work)

    def retry_step(
        self, execution_id: str, step_id: str, *, by: str, from_here: bool = False
    ) -> list[str]:
        """Run a failed step again (and, ``from_here``, everything after it; from here, a
        succeeded step may be run again too). Returns the other steps reset to pending, in
        definition order. Raises `Conflict` when the engine's rules refuse (with why)."""
        verb = "retried" + (" from" if from_here else "")

        def change(graph: Graph, state: ExecutionState, now: float) -> dict[str, StepState]:
            return control.retry_step(graph, state, step_id, from_here, now=now)

        return self._manual(execution_id, step_id, by, change, verb)

    def skip_step(self, execution_id: str, step_id: str, *, by: str) -> None:
        """Mark a failed step skipped by a person; downstream goes on as if it succeeded."""

        def change(graph: Graph, state: ExecutionState, now: float) -> dict[str, StepState]:
            return control.skip_step(graph, state, step_id, now=now)

        self._manual(execution_id, step_id, by, change, "skipped")

    def _manual(
        self,
        execution_id: str,
        step_id: str,
        by: str,
        change: Callable[[Graph, ExecutionState, float], dict[str, StepState]],
        verb: str,
    ) -> list[str]:
        def work(tx: Transaction) -> list[str]:
            session = tx.session
            now = self.clock()
            ex = runs_store.lock_execution(session, execution_id)
            if ex.cancel_cleanup:
                raise Conflict(
                    f"cannot change step {step_id!r}: cleanup was requested for execution "
                    f"{execution_id} (what it applied is being or was undone); start a new run"
                )
            graph, state = execution_state(session, ex, now)
            try:
                new_states = change(graph, state, now)
            except UnknownStep as exc:
                raise NotFound(str(exc)) from exc
            except ValueError as exc:
                raise Conflict(str(exc)) from exc
            for sid, st in new_states.items():
                values: dict[str, Any] = {
                    "status": st.status.value,
                    "entered_at": now,
                    "retry_at": None,
                    "retry_base": st.retry_base,
                    "user_skipped": st.user_skipped,
                    "gate_result": st.gate_result.value if st.gate_result else None,
                    "gate_reason": st.gate_reason,
                }
                if st.status == StepStatus.PENDING:
                    values.update(ended_at=None, error=None, outputs={})
                elif st.status.terminal:
                    values["ended_at"] = now
                runs_store.update_step(session, execution_id, sid, **values)
                changed = events.StepChanged(sid, st.status, f"{verb} by {by}")
                events.write_one(session, execution_id, now, changed)
            update: dict[str, Any] = {"resumed_at": now}
            if ex.status.terminal:
                update.update(
                    status=ExecutionStatus.RUNNING.value,
                    ended_at=None,
                    status_reason=f"resumed: {by} {verb} step {step_id}",
                )
                events.write_one(
                    session,
                    execution_id,
                    now,
                    events.ExecutionChanged(
                        ExecutionStatus.RUNNING, f"resumed: {by} {verb} step {step_id}"
                    ),
                )
            runs_store.update_execution(session, execution_id, **update)
            others = [n.id for n in graph.steps if n.id in new_states and n.id != step_id]
            message = f"{by} {verb} step {step_id}" + reset_note(graph, others)
            runs_store.add_engine_log(
                session,
                [{"execution_id": execution_id, "step_id": step_id, "at": now, "message": message}],
            )
            tx.changes.executions.add(execution_id)
            action = "step.skip" if verb == "skipped" else "step.retry"
            detail = {"from_here": True, "reset": others} if verb.endswith("from") else {}
            audit.record(session, by, action, f"{execution_id}/{step_id}", detail)
            self.reconciler.reconcile(tx, execution_id)
            return others

        return self.transactions.run(work)


def reset_note(graph: Graph, reset: list[str]) -> str:
    """What a manual retry reset besides its step, in words ("" when nothing): the steps, and
    the approvals among them, which people must answer again."""
    if not reset:
        return ""
    gates = [sid for sid in reset if graph.step(sid).type is StepType.APPROVAL]
    text = f"; reset {', '.join(reset)}"
    if gates:
        text += f" (approval {', '.join(gates)} will be asked again)"
    return text
