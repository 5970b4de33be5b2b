"""What the runtime records on an execution's event stream, as typed records.

Each record is one thing that happened (a status changed, a job was queued or ended, a gate
opened); ``row`` turns it into the stored form (``kind`` and ``data``) in one exhaustive
``match``, so the kinds and their fields are spelled in this module only and a new record
that is not handled there is a type error. The live stream (SSE) and the feed read the
stored rows: their shape is part of the API and must not change here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, assert_never

from sqlalchemy.orm import Session

from opsflow.status import ApprovalStatus, ExecutionStatus, JobPurpose, JobStatus, StepStatus
from opsflow.store import runs as runs_store


class EventKind(StrEnum):
    """The stored ``kind`` of an event (the SSE event name)."""

    EXECUTION = "execution"
    STEP = "step"
    JOB = "job"
    APPROVAL = "approval"
    ENGINE = "engine"


CREATED_REASON = "created"  # the reason of a new execution's first event (the feed reads it)


@dataclass(frozen=True)
class ExecutionChanged:
    status: ExecutionStatus
    reason: str


@dataclass(frozen=True)
class StepChanged:
    step: str
    status: StepStatus
    reason: str


@dataclass(frozen=True)
class JobChanged:
    """A job was queued, started, withdrawn or cancelled (not its agent's end report)."""

    step: str
    attempt: int
    job_id: str
    status: JobStatus
    purpose: JobPurpose = JobPurpose.RUN
    item: int | None = None  # the item of a fanned-out step the job runs


@dataclass(frozen=True)
class JobEnded:
    """An agent reported a job's end (with the error it gave, if any)."""

    step: str
    attempt: int
    job_id: str
    status: JobStatus
    error: str | None


@dataclass(frozen=True)
class EngineNote:
    """A line of the engine log, mirrored on the stream."""

    step: str | None
    message: str


@dataclass(frozen=True)
class ApprovalOpened:
    step: str
    approval_id: str


@dataclass(frozen=True)
class ApprovalAnswered:
    """One person approved; ``needed`` more approvals are still needed."""

    step: str
    by: str
    needed: int


@dataclass(frozen=True)
class ApprovalDecided:
    step: str
    status: ApprovalStatus
    via: str | None


Event = (
    ExecutionChanged
    | StepChanged
    | JobChanged
    | JobEnded
    | EngineNote
    | ApprovalOpened
    | ApprovalAnswered
    | ApprovalDecided
)


@dataclass(frozen=True)
class Stamped:
    """An event of one execution at one time, ready to be written."""

    execution_id: str
    at: float
    event: Event


def kind_and_data(event: Event) -> tuple[EventKind, dict[str, Any]]:
    """The stored form of ``event``: its kind and its data (JSON)."""
    match event:
        case ExecutionChanged(status, reason):
            return EventKind.EXECUTION, {"status": status.value, "reason": reason}
        case StepChanged(step, status, reason):
            return EventKind.STEP, {"step": step, "status": status.value, "reason": reason}
        case JobChanged(step, attempt, job_id, status, purpose, item):
            data: dict[str, Any] = {
                "step": step,
                "attempt": attempt,
                "job_id": job_id,
                "status": status.value,
            }
            if purpose is not JobPurpose.RUN:
                data["purpose"] = purpose.value
            if item is not None:
                data["item"] = item
            return EventKind.JOB, data
        case JobEnded(step, attempt, job_id, status, error):
            return EventKind.JOB, {
                "step": step,
                "attempt": attempt,
                "job_id": job_id,
                "status": status.value,
                "error": error,
            }
        case EngineNote(step, message):
            return EventKind.ENGINE, {"step": step, "message": message}
        case ApprovalOpened(step, approval_id):
            return EventKind.APPROVAL, {
                "step": step,
                "status": ApprovalStatus.PENDING.value,
                "approval_id": approval_id,
            }
        case ApprovalAnswered(step, by, needed):
            return EventKind.APPROVAL, {
                "step": step,
                "status": ApprovalStatus.PENDING.value,
                "by": by,
                "needed": needed,
            }
        case ApprovalDecided(step, status, via):
            return EventKind.APPROVAL, {"step": step, "status": status.value, "via": via}
        case _:
            assert_never(event)


def row(stamped: Stamped) -> dict[str, Any]:
    """The row ``runs_store.add_events`` inserts for ``stamped``."""
    kind, data = kind_and_data(stamped.event)
    return {
        "execution_id": stamped.execution_id,
        "at": stamped.at,
        "kind": kind.value,
        "data": data,
    }


def write(session: Session, stamped: Iterable[Stamped]) -> None:
    """Insert the events, in order, in one statement."""
    runs_store.add_events(session, [row(s) for s in stamped])


def write_one(session: Session, execution_id: str, at: float, event: Event) -> None:
    write(session, [Stamped(execution_id, at, event)])
