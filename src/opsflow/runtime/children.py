"""The ``workflow`` step: a child run of another workflow, started and settled durably.

Both halves happen inside reconciles, never in a job an agent holds for hours:

- *Start.* The engine's ``StartChildWorkflow`` is applied by `start_child` inside the
  parent's reconcile: the params are rendered, the child's ``RunRequest`` is built and its id
  chosen, and the parent step becomes RUNNING holding that id (``outputs.execution_id``). The
  child's rows are written by `Children` right after that reconcile, in the same transaction:
  the parent's step change and the child's creation commit together or not at all.
- *End.* When the child reaches a terminal status, `Children` (a follower of the reconciler,
  in the transaction that ended the child) writes the parent step's answer (``gate_result``
  SUCCEEDED iff the child completed, outputs ``execution_id, status, outputs``) and
  reconciles the parent under its row lock. The child's end and its parent's next step commit
  together, so a crash between them is impossible: either both happened or, after a restart,
  the child's end is decided again and settles the parent then.
- *Cancel.* A parent step cancelled while its child runs (the parent was cancelled or timed
  out) asks for the child's cancel in the same transaction, with the parent's mode.

A child acts for whoever started its parent (``started_by``), and carries the chain of
workflows that led to it, so nesting stops at the server's depth limit with the loop named.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import ValidationError

from opsflow.engine.chains import depth_problem
from opsflow.engine.model import CancelMode
from opsflow.errors import Conflict, InvalidInput, NotFound, TemplateError
from opsflow.runtime import events
from opsflow.runtime.approvals import RunView
from opsflow.runtime.changes import Changes, ChildCancel, ChildStart
from opsflow.runtime.context import step_definition, template_context
from opsflow.runtime.definitions import workflow_model
from opsflow.runtime.launch import run_request
from opsflow.runtime.transaction import Transaction
from opsflow.spec.sandbox import budget
from opsflow.spec.template import is_template, render_value
from opsflow.spec.triggers import RunTrigger
from opsflow.status import ExecutionStatus, Outcome, StepStatus
from opsflow.store import runs as runs_store
from opsflow.store import workflows as workflows_store
from opsflow.store.runs import Execution
from opsflow.words import counted

CHILD = "execution_id"  # the key of a workflow step's outputs that names its child run


def start_child(run: RunView, step_id: str, depth_limit: int) -> None:
    """Apply ``StartChildWorkflow``: the step becomes RUNNING with its child's id, and the
    child is queued on ``run.changes`` for `Children` to create in this transaction. A child
    that cannot start (unknown workflow, bad params, too deep) fails the step, saying why."""
    raw = step_definition(run.ex, step_id)
    target = str(raw.get("workflow"))
    wait = bool(raw.get("wait", True))
    started = run.steps[step_id].started_at or run.now
    try:
        problem = depth_problem((*run.ex.chain, run.ex.workflow_id, target), depth_limit)
        if problem is not None:
            raise Conflict(problem)
        params = _params(run, target, raw.get("params") or {})
        request = run_request(
            run.session,
            target,
            params=params,
            started_by=run.ex.started_by,
            trigger_type=RunTrigger.WORKFLOW.value,
            trigger={
                "type": RunTrigger.WORKFLOW.value,
                "name": f"step {step_id}",
                "source": run.ex.id,
                "parent": {
                    "execution_id": run.ex.id,
                    "workflow": run.ex.workflow_id,
                    "step": step_id,
                },
            },
            chain=(*run.ex.chain, run.ex.workflow_id),
            parent=(run.ex.id, step_id),
        )
    except (TemplateError, InvalidInput, NotFound, Conflict, ValidationError) as exc:
        why = (
            f"its published definition no longer loads ({counted(exc.error_count(), 'problem')}, "
            "e.g. a field this server no longer knows): publish it again"
            if isinstance(exc, ValidationError)
            else exc.message
        )
        reason = f"could not start workflow {target}: {why}"
        run.set_step(
            step_id,
            status=StepStatus.RUNNING.value,
            entered_at=run.now,
            started_at=started,
            gate_result=Outcome.FAILED.value,
            gate_reason=reason,
            error=reason,
        )
        # No line of its own: the engine's next one says the step failed, and this why.
        return
    child_id = uuid.uuid4().hex
    values: dict[str, Any] = {
        "status": StepStatus.RUNNING.value,
        "entered_at": run.now,
        "started_at": started,
        "outputs": {CHILD: child_id},
        "gate_result": None,
        "gate_reason": None,
        "error": None,
    }
    if not wait:
        values.update(
            gate_result=Outcome.SUCCEEDED.value, gate_reason=f"started execution {child_id}"
        )
    run.set_step(step_id, **values)
    run.event(events.StepChanged(step_id, StepStatus.RUNNING, f"started execution {child_id}"))
    run.changes.child_starts.append(ChildStart(child_id, request))
    run.engine_log(f"step {step_id}: its child run is execution {child_id} of {target}", step_id)


def _params(run: RunView, target: str, templates: Mapping[str, Any]) -> dict[str, Any]:
    """The child's params, each rendered on its own so a failure names ``params.<name>``; a
    rendered template is text, read as the param's declared type (as ``-p name=value``)."""
    latest = workflows_store.latest_version(run.session, target)
    # Validated when published: a rule added since must not undo the report that got here.
    declared = workflow_model(latest.definition).params if latest is not None else {}
    context = template_context(
        run.ex, run.full_steps(), run.server_facts(), secrets_for="a child workflow's params"
    )
    out: dict[str, Any] = {}
    with budget():
        for name, value in templates.items():
            rendered = render_value(value, context, where=f"params.{name}")
            if isinstance(value, str) and is_template(value) and name in declared:
                rendered = declared[name].from_text(str(rendered))
            out[name] = rendered
    return out


def cancel_child(run: RunView, step_id: str) -> None:
    """The workflow step ``step_id`` was cancelled (its run was cancelled or timed out): its
    child run is cancelled too, with the parent's mode (a timeout forces)."""
    child = run.steps[step_id].outputs.get(CHILD)
    if child is None:
        outputs = runs_store.step_outputs(run.session, run.ex.id).get(step_id) or {}
        child = outputs.get(CHILD)
    if child is None:
        return
    if run.ex.cancel_mode:
        mode = CancelMode(run.ex.cancel_mode)
        reason = f"its parent execution {run.ex.id} was cancelled (step {step_id})"
    else:  # the parent's workflow timeout stops everything at once
        mode = CancelMode.FORCE
        reason = f"its parent execution {run.ex.id} timed out (step {step_id})"
    run.changes.child_cancels.append(ChildCancel(str(child), mode, run.ex.cancel_by, reason))


class Starter(Protocol):
    def __call__(
        self, tx: Transaction, request: Any, *, execution_id: str | None = None
    ) -> str: ...


class Canceller(Protocol):
    def __call__(
        self, tx: Transaction, execution_id: str, *, mode: CancelMode, by: str | None, reason: str
    ) -> Execution: ...


class Reconcile(Protocol):
    def __call__(self, tx: Transaction, execution_id: str, *, locked: Execution | None) -> None: ...


class Children:
    """A follower of the reconciler: in the transaction of each reconcile, it creates the
    children that reconcile started, cancels those it cancelled, and settles the parent step
    of every child that ended."""

    def __init__(self, start: Starter, cancel: Canceller, reconcile: Reconcile) -> None:
        self.start = start
        self.cancel = cancel
        self.reconcile = reconcile

    def __call__(self, tx: Transaction, result: Changes) -> None:
        for start in result.child_starts:
            self.start(tx, start.request, execution_id=start.execution_id)
            child = runs_store.get_execution(tx.session, start.execution_id)
            if child.status.terminal and child.id not in tx.changes.finished:
                # Ended as it was created (its workflow's concurrency policy skipped it).
                self.settle(tx, child)
        for cancel in result.child_cancels:
            child = runs_store.lock_execution(tx.session, cancel.execution_id)
            if not child.status.terminal:
                self.cancel(tx, child.id, mode=cancel.mode, by=cancel.by, reason=cancel.reason)
        for finished in sorted(result.finished):
            child = runs_store.get_execution(tx.session, finished)
            if child.parent_execution_id is not None:
                self.settle(tx, child)

    def settle(self, tx: Transaction, child: Execution) -> None:
        """The child ended: answer its parent's step (if it still waits for this child) and
        reconcile the parent."""
        assert child.parent_execution_id is not None and child.parent_step_id is not None
        parent = runs_store.lock_execution(tx.session, child.parent_execution_id)
        step_id = child.parent_step_id
        step = next(
            (s for s in runs_store.list_steps(tx.session, parent.id) if s.step_id == step_id),
            None,
        )
        if (
            step is None
            or step.status != StepStatus.RUNNING
            or step.gate_result is not None
            or step.outputs.get(CHILD) != child.id
        ):
            return  # not waiting for it (wait: false, cancelled, or retried since)
        completed = child.status == ExecutionStatus.COMPLETED
        reason = f"execution {child.id} of workflow {child.workflow_id} {child.status.value}"
        if child.status_reason and not completed:
            reason += f": {child.status_reason}"
        now = child.ended_at or parent.created_at
        runs_store.update_step(
            tx.session,
            parent.id,
            step_id,
            gate_result=(Outcome.SUCCEEDED if completed else Outcome.FAILED).value,
            gate_reason=reason,
            outputs={CHILD: child.id, "status": child.status.value, "outputs": child.outputs},
        )
        runs_store.add_engine_log(
            tx.session,
            [{"execution_id": parent.id, "step_id": step_id, "at": now, "message": reason}],
        )
        tx.changes.executions.add(parent.id)
        self.reconcile(tx, parent.id, locked=parent)
