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
from opsflow.runtime import approvals, events, fan_out
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

    def retry_item(self, execution_id: str, step_id: str, item: int, *, by: str) -> None:
        """Run a failed or cancelled item of a fanned-out step again (``engine.control``)."""

        def change(graph: Graph, state: ExecutionState, now: float) -> dict[str, StepState]:
            return control.retry_item(graph, state, step_id, item, now=now)

        self._manual(execution_id, step_id, by, change, "retried", item=item)

    def skip_item(self, execution_id: str, step_id: str, item: int, *, by: str) -> None:
        """Skip a failed or cancelled item of a fanned-out step (needs ``allow_skip``)."""

        def change(graph: Graph, state: ExecutionState, now: float) -> dict[str, StepState]:
            return control.skip_item(graph, state, step_id, item, now=now)

        self._manual(execution_id, step_id, by, change, "skipped", item=item)

    def cancel_items(
        self, execution_id: str, step_id: str, item: int | None = None, *, by: str
    ) -> None:
        """Cancel one item (or every item not ended) of a running fanned-out step."""

        def change(graph: Graph, state: ExecutionState, now: float) -> dict[str, StepState]:
            return control.cancel_items(graph, state, step_id, item)

        self._manual(execution_id, step_id, by, change, "cancelled", item=item, resume=False)

    def _manual(
        self,
        execution_id: str,
        step_id: str,
        by: str,
        change: Callable[[Graph, ExecutionState, float], dict[str, StepState]],
        verb: str,
        *,
        item: int | None = None,
        resume: bool = True,
    ) -> list[str]:
        """Write what ``change`` computes under the row lock, log and audit it, reconcile.
        ``item``: the item acted on (else the step); ``resume``: a person resumes the run
        (``resumed_at``), which a cancel of items does not."""
        what = f"step {step_id}" if item is None else f"item {item} of step {step_id}"

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
                    "item_count": st.items,
                    "item_marks": fan_out.marks_json(st.item_marks),
                }
                if st.items is None:
                    values["items"] = None  # worked out again when the step starts
                if st.status == StepStatus.PENDING:
                    values.update(ended_at=None, error=None, outputs={})
                elif st.status.terminal:
                    values["ended_at"] = now
                runs_store.update_step(session, execution_id, sid, **values)
                said = (
                    f"{verb} by {by}"
                    if sid != step_id or item is None
                    else f"{what} {verb} by {by}"
                )
                changed = events.StepChanged(sid, st.status, said)
                events.write_one(session, execution_id, now, changed)
            update: dict[str, Any] = {"resumed_at": now} if resume else {}
            if ex.status.terminal:
                update.update(
                    status=ExecutionStatus.RUNNING.value,
                    ended_at=None,
                    status_reason=f"resumed: {by} {verb} {what}",
                )
                events.write_one(
                    session,
                    execution_id,
                    now,
                    events.ExecutionChanged(
                        ExecutionStatus.RUNNING, f"resumed: {by} {verb} {what}"
                    ),
                )
            if update:
                runs_store.update_execution(session, execution_id, **update)
            others = [n.id for n in graph.steps if n.id in new_states and n.id != step_id]
            message = f"{by} {verb} {what}" + reset_note(graph, others)
            runs_store.add_engine_log(
                session,
                [{"execution_id": execution_id, "step_id": step_id, "at": now, "message": message}],
            )
            tx.changes.executions.add(execution_id)
            action = {"skipped": "step.skip", "cancelled": "step.cancel"}.get(verb, "step.retry")
            detail: dict[str, Any] = (
                {"from_here": True, "reset": others} if verb.endswith("from") else {}
            )
            if item is not None:
                detail["item"] = item
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
