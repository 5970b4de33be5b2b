"""What one transaction changed, to publish once it has committed."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Changes:
    """What a transaction changed, to publish after it commits."""

    executions: set[str] = field(default_factory=set)
    jobs_queued: bool = False
    cancelled_jobs: set[str] = field(default_factory=set)
    earliest_timer: float | None = None  # the earliest timer this transaction set
    finished: set[str] = field(default_factory=set)  # executions that reached a terminal status
    notifications: bool = False  # the outbox has something to send

    def note_timer(self, due_at: float | None) -> None:
        if due_at is not None and (self.earliest_timer is None or due_at < self.earliest_timer):
            self.earliest_timer = due_at

    def merge(self, other: Changes) -> None:
        self.executions |= other.executions
        self.jobs_queued |= other.jobs_queued
        self.cancelled_jobs |= other.cancelled_jobs
        self.note_timer(other.earliest_timer)
        self.finished |= other.finished
        self.notifications |= other.notifications
