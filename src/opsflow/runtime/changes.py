"""What one transaction changed, to publish once it has committed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opsflow.engine.model import CancelMode
    from opsflow.runtime.launch import RunRequest


@dataclass(frozen=True)
class ChildStart:
    """A child run a workflow step asked for; its parent step already holds its id."""

    execution_id: str
    request: RunRequest


@dataclass(frozen=True)
class ChildCancel:
    """The child run of a workflow step that was cancelled with its parent."""

    execution_id: str
    mode: CancelMode
    by: str | None
    reason: str


@dataclass
class Changes:
    """What a transaction changed, to publish after it commits."""

    executions: set[str] = field(default_factory=set)
    jobs_queued: bool = False
    # job id -> pool of each job the reconcile queued in this transaction (a report's write
    # leases them to this process's waiting claims in the same commit, `AgentJobs.write`).
    queued_jobs: dict[str, str] = field(default_factory=dict)
    cancelled_jobs: set[str] = field(default_factory=set)
    earliest_timer: float | None = None  # the earliest timer this transaction set
    finished: set[str] = field(default_factory=set)  # executions that reached a terminal status
    notifications: bool = False  # the outbox has something to send
    # Work for the same transaction, done by the reconciler's followers right after the
    # reconcile that asked for it (never merged: each reconcile's own list is done once).
    child_starts: list[ChildStart] = field(default_factory=list)
    child_cancels: list[ChildCancel] = field(default_factory=list)

    def note_timer(self, due_at: float | None) -> None:
        if due_at is not None and (self.earliest_timer is None or due_at < self.earliest_timer):
            self.earliest_timer = due_at

    def merge(self, other: Changes) -> None:
        self.executions |= other.executions
        self.jobs_queued |= other.jobs_queued
        self.queued_jobs |= other.queued_jobs
        self.cancelled_jobs |= other.cancelled_jobs
        self.note_timer(other.earliest_timer)
        self.finished |= other.finished
        self.notifications |= other.notifications
