"""Applying a workflow's concurrency policy (the rule itself is ``engine.concurrency``).

Admission holds the workflow's row lock, so two requests cannot both take the last slot. A
queued execution stays PENDING and is never reconciled until ``admit_queued`` releases it,
which happens in the same transaction in which one of the workflow's executions ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from opsflow.engine.concurrency import Verdict, admit, release
from opsflow.runtime import events
from opsflow.runtime.definitions import workflow_model
from opsflow.runtime.launch import RunRequest
from opsflow.status import ConcurrencyPolicy, ExecutionStatus
from opsflow.store import runs as runs_store


def _policy(definition: dict[str, Any]) -> tuple[ConcurrencyPolicy, int] | None:
    # Read through the model: the stored canonical form leaves defaults (limit 1) out. Only
    # the shape is read: the definition was validated when saved, and this runs inside the
    # transaction that creates or ends a run, which a rule added since must not break.
    concurrency = workflow_model(definition).concurrency
    if concurrency is None:
        return None
    return concurrency.policy, concurrency.limit


@dataclass(frozen=True)
class Admission:
    """The policy's answer for a new execution: whether it starts now, and the running
    executions it supersedes (their cancel requested; the caller reconciles them), or that
    it ended at once, cancelled (policy ``skip``)."""

    start: bool
    superseded: tuple[str, ...] = ()
    ended: bool = False


def admit_new(session: Session, request: RunRequest, execution_id: str, now: float) -> Admission:
    """Whether the new execution may start now (see `Admission`)."""
    rule = _policy(request.definition)
    if rule is None:
        return Admission(start=True)
    policy, limit = rule
    runs_store.lock_workflow(session, request.workflow_id)
    active = runs_store.active_of_workflow(session, request.workflow_id)
    queued = [q for q in runs_store.queued(session, request.workflow_id) if q != execution_id]
    verdict = admit(policy, limit, active, queued)
    if verdict.verdict == Verdict.START:
        return Admission(start=True)
    if verdict.verdict == Verdict.SKIP:
        runs_store.end_unstarted(
            session, execution_id, ExecutionStatus.CANCELLED, verdict.reason, now
        )
        events.write_one(
            session,
            execution_id,
            now,
            events.ExecutionChanged(ExecutionStatus.CANCELLED, verdict.reason),
        )
        return Admission(start=False, ended=True)
    runs_store.update_execution(session, execution_id, status_reason=verdict.reason)
    runs_store.add_engine_log(
        session,
        [{"execution_id": execution_id, "step_id": None, "at": now, "message": verdict.reason}],
    )
    for victim in verdict.cancel:
        runs_store.update_execution(
            session,
            victim,
            cancel_mode=verdict.cancel_mode.value,
            cancel_requested_at=now,
            cancel_reason=(
                f"superseded by execution {execution_id} (concurrency policy cancel-running)"
            ),
            cancel_by=request.started_by,
        )
    return Admission(start=False, superseded=tuple(verdict.cancel))


def admit_queued(session: Session, finished_id: str) -> list[str]:
    """Queued executions of the finished one's workflow that may start now."""
    finished = runs_store.get_execution(session, finished_id)
    rule = _policy(finished.definition)
    if rule is None:
        return []
    _, limit = rule
    runs_store.lock_workflow(session, finished.workflow_id)
    active = runs_store.active_of_workflow(session, finished.workflow_id)
    queued = runs_store.queued(session, finished.workflow_id)
    return list(release(limit, active, queued))
