"""Workflow triggers: B runs when a run of A ends in one of the trigger's ``statuses``.

`Chains` follows the reconciler: in the very transaction in which a run reaches its end, each
workflow trigger that follows the run's workflow fires through `fire_in`, with a
``chain_fires`` row (trigger, upstream execution) as its deduplication claim. The upstream's
end and its followers' starts commit together, so a crash can neither lose a follower nor
start one twice, and a run that is retried by hand and ends again starts nothing new.

The follower sees ``trigger.upstream = {execution_id, workflow, status, params, outputs}``,
acts for whoever started the upstream run, and records the upstream execution as its trigger's
source. A refusal (the follower is paused or a draft, its trigger disabled, bad params, the
chain too deep) is written to the upstream run's engine log and never fails the upstream run.
Test runs of drafts start no followers.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from opsflow.engine.chains import depth_problem
from opsflow.errors import OpsflowError
from opsflow.runtime import events
from opsflow.runtime.changes import Changes
from opsflow.runtime.service import Runtime
from opsflow.runtime.transaction import Transaction
from opsflow.spec.triggers import TriggerType, WorkflowTrigger
from opsflow.store import chains as chains_store
from opsflow.store import runs as runs_store
from opsflow.store import triggers as store
from opsflow.store.runs import Execution
from opsflow.triggers.fire import Event, fire_in
from opsflow.words import counted

log = logging.getLogger(__name__)


class Chains:
    """Fires the workflow triggers of every run that ended in a reconcile's transaction."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def __call__(self, tx: Transaction, result: Changes) -> None:
        for finished in sorted(result.finished):
            upstream = runs_store.get_execution(tx.session, finished)
            if upstream.status.terminal and not upstream.test_run:
                for trigger in store.list_of_type(tx.session, TriggerType.WORKFLOW.value):
                    self._follow(tx, upstream, trigger)

    def _follow(self, tx: Transaction, upstream: Execution, trigger: store.Trigger) -> None:
        try:
            spec = WorkflowTrigger.model_validate(trigger.spec)
        except ValidationError:  # validated when published; a later rule must not break runs
            log.exception(
                "workflow trigger %s of %s is unreadable", trigger.name, trigger.workflow_id
            )
            return
        if spec.workflow != upstream.workflow_id or upstream.status not in spec.statuses:
            return
        where = f"workflow trigger {trigger.name!r} of workflow {trigger.workflow_id!r}"
        path = (*upstream.chain, upstream.workflow_id, trigger.workflow_id)
        problem = depth_problem(path, self.runtime.reconciler.settings.chain_depth)
        if problem is not None:
            self._note(tx, upstream, f"{where} did not start a run: {problem}")
            return
        now = self.runtime.clock()
        event = Event(
            source=upstream.id,
            actor=upstream.started_by,
            details={"upstream": _upstream(upstream)},
            chain=(*upstream.chain, upstream.workflow_id),
        )

        def claim(session: Any, execution_id: str) -> str | None:
            return chains_store.claim(session, trigger.id, upstream.id, execution_id, now)

        try:
            # A savepoint: a refused fire leaves nothing behind, and the upstream's end stands.
            with tx.session.begin_nested():
                fired = fire_in(
                    self.runtime, tx.session, tx.changes, trigger.id, event, claim=claim
                )
        except OpsflowError as exc:
            self._note(tx, upstream, f"{where} did not start a run: {exc.message}")
            return
        except ValidationError as exc:  # saved under older rules: never undo the upstream's end
            self._note(
                tx,
                upstream,
                f"{where} did not start a run: its published definition no longer loads "
                f"({counted(exc.error_count(), 'problem')}, e.g. a field this server no "
                "longer knows): publish it again",
            )
            return
        if fired.created:
            self._note(tx, upstream, f"{where} started execution {fired.execution_id}")

    def _note(self, tx: Transaction, upstream: Execution, message: str) -> None:
        at = self.runtime.clock()
        runs_store.add_engine_log(
            tx.session,
            [{"execution_id": upstream.id, "step_id": None, "at": at, "message": message}],
        )
        events.write_one(tx.session, upstream.id, at, events.EngineNote(None, message))
        tx.changes.executions.add(upstream.id)


def _upstream(execution: Execution) -> dict[str, Any]:
    """``trigger.upstream`` of a follower run."""
    return {
        "execution_id": execution.id,
        "workflow": execution.workflow_id,
        "status": execution.status.value,
        "params": execution.params,
        "outputs": execution.outputs,
    }
