"""Cleanup: undo what the run did, one visible cleanup job at a time.

After an execution ends CANCELLED with a cleanup request, or when cleanup is asked for after
it ended (failed, completed, rejected...), every step whose type knows
how to undo its work gets a cleanup job, newest first (reverse order of ending), one after the
other: the next is queued when the previous one ends. Cleanup jobs are ordinary jobs with
``purpose = "cleanup"``: agents run them, their logs stream, and the execution detail lists
them; the engine does not count them as attempts. A step type opts in with one entry in
``UNDO``: a pure function from the step's definition to the definition of its undo job.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from opsflow.errors import TemplateError
from opsflow.runtime import events
from opsflow.runtime.changes import Changes
from opsflow.runtime.context import ServerFacts, job_config, step_definition
from opsflow.status import JobPurpose, JobStatus, StepStatus, StepType
from opsflow.store import jobs as jobs_store
from opsflow.store import runs as runs_store
from opsflow.store.runs import Execution, Step
from opsflow.words import counted


def _terraform_undo(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """A Terraform apply is undone by destroying the same configuration and state."""
    if raw.get("action", "plan") != "apply":
        return None
    undo = {k: v for k, v in raw.items() if k != "plan_from"}
    undo["action"] = "destroy"
    return undo


UNDO: dict[StepType, Callable[[Mapping[str, Any]], dict[str, Any] | None]] = {
    StepType.TERRAFORM: _terraform_undo,
}

DONE_MESSAGE = "cleanup finished"


def undoable_steps(execution: Execution, steps: list[Step]) -> list[Step]:
    """Those of the execution's ``steps`` cleanup undoes, newest first: every step with an
    undo (``UNDO``) that started and ended succeeded, failed or cancelled (a partial apply
    is undone too)."""
    ran = [
        s
        for s in steps
        if StepType(s.type) in UNDO
        and s.started_at is not None
        and s.status in (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.CANCELLED)
        and UNDO[StepType(s.type)](step_definition(execution, s.step_id)) is not None
    ]
    ran.sort(key=lambda s: s.ended_at or 0.0, reverse=True)
    return ran


def advance_cleanup(
    session: Session, execution: Execution, now: float, facts: ServerFacts
) -> Changes:
    """Queue the next cleanup job, or note that cleanup is complete."""
    changes = Changes()
    jobs = jobs_store.attempts_of_execution(session, execution.id)
    cleanup = [j for j in jobs if j.purpose == JobPurpose.CLEANUP]
    if any(not j.status.terminal for j in cleanup):
        return changes  # one at a time, in order
    handled = {j.step_id for j in cleanup}
    steps = runs_store.list_steps(session, execution.id)
    by_id = {s.step_id: s for s in steps}
    for step in undoable_steps(execution, steps):
        if step.step_id in handled:
            continue
        undo = UNDO[StepType(step.type)](step_definition(execution, step.step_id))
        if undo is None:
            continue
        attempt = 1 + max((j.attempt for j in jobs if j.step_id == step.step_id), default=0)
        values: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "execution_id": execution.id,
            "step_id": step.step_id,
            "attempt": attempt,
            "type": step.type,
            "status": JobStatus.PENDING.value,
            "purpose": JobPurpose.CLEANUP.value,
            "created_at": now,
        }
        try:
            config = job_config(execution, StepType(step.type), undo, by_id, facts)
            values["spec"] = {"config": config, "bundle": execution.bundle_digest}
            changes.jobs_queued = True
            message = f"cleanup: undoing step {step.step_id} ({undo.get('action', 'undo')})"
        except TemplateError as exc:
            values.update(status=JobStatus.FAILED.value, ended_at=now, error=exc.message, spec={})
            message = f"cleanup of step {step.step_id} could not start: {exc.message}"
        jobs_store.insert_job(session, values)
        _note(session, execution.id, now, message, step.step_id, job=values)
        changes.executions.add(execution.id)
        if values["status"] == JobStatus.PENDING.value:
            return changes
        handled.add(step.step_id)
    if cleanup and not any(
        e["message"].startswith(DONE_MESSAGE) for e in runs_store.engine_log(session, execution.id)
    ):
        failed = [j.step_id for j in cleanup if j.status != JobStatus.COMPLETED]
        text = f"{DONE_MESSAGE}: {counted(len(cleanup), 'step')} undone"
        if failed:
            text += f"; failed for {', '.join(failed)} (see their cleanup jobs)"
        _note(session, execution.id, now, text, None)
        changes.executions.add(execution.id)
    return changes


def _note(
    session: Session,
    execution_id: str,
    now: float,
    message: str,
    step: str | None,
    job: dict[str, Any] | None = None,
) -> None:
    runs_store.add_engine_log(
        session, [{"execution_id": execution_id, "step_id": step, "at": now, "message": message}]
    )
    noted: list[events.Event] = [events.EngineNote(step, message)]
    if job is not None:
        noted.append(
            events.JobChanged(
                job["step_id"],
                job["attempt"],
                job["id"],
                JobStatus(job["status"]),
                JobPurpose.CLEANUP,
            )
        )
    events.write(session, [events.Stamped(execution_id, now, e) for e in noted])
