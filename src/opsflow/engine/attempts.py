"""What an attempt of a job step is up to, shared by plain and fanned-out steps.

``Stop`` (a cancel or the workflow timeout), the step's timeout, the placement timeout of a
job no agent took, the agent-lost count, and the note on a failure nobody handles; the rules
are in ``engine.results``' module docstring.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsflow.engine.draft import Draft
from opsflow.engine.model import Attempt, StepNode
from opsflow.engine.wording import format_duration, unplaced
from opsflow.status import ExecutionStatus, JobStatus, StepStatus


@dataclass(frozen=True)
class Stop:
    """Why nothing new may start: a cancel request or the workflow timeout."""

    force: bool
    outcome: ExecutionStatus  # CANCELLED for a cancel, FAILED for the workflow timeout
    reason: str


def step_timeout(node: StepNode) -> float | None:
    """The step's per-attempt timeout in seconds; None (or 0) means none."""
    return node.timeout if node.timeout is not None and node.timeout > 0 else None


_UNHANDLED = " (no step handles this {what}; only handlers will start from now on)"


def unhandled_note(draft: Draft, node: StepNode, status: StepStatus) -> str:
    """The note on a failure or rejection no step handles (empty when one does)."""
    shape = draft.shape
    handlers = shape.failure_handlers if status == StepStatus.FAILED else shape.rejection_handlers
    if node.id in handlers:
        return ""
    what = "failure" if status == StepStatus.FAILED else "rejection"
    return _UNHANDLED.format(what=what)


def without_unhandled_note(reason: str) -> str:
    """A step's error without `unhandled_note`'s engine talk, for messages to people outside
    the run's own log (a run-end notification)."""
    for what in ("failure", "rejection"):
        note = _UNHANDLED.format(what=what)
        if reason.endswith(note):
            return reason[: -len(note)]
    return reason


def end_step(draft: Draft, node: StepNode, status: StepStatus, reason: str) -> None:
    """Move a started step to its terminal status, noting when nothing handles a failure."""
    if status in (StepStatus.FAILED, StepStatus.REJECTED):
        reason += unhandled_note(draft, node, status)
    draft.set_step(node.id, status, reason)


def lost_in_a_row(attempts: tuple[Attempt, ...]) -> int:
    """How many of the last attempts, counted back from the newest, lost their agent."""
    count = 0
    for attempt in reversed(attempts):
        if not attempt.agent_lost:
            break
        count += 1
    return count


def job_in_flight(
    draft: Draft, node: StepNode, attempt: Attempt, stop: Stop | None, *, named: str | None = None
) -> None:
    """An attempt not ended yet: its placement timeout, its timeout, and a stop's cancel.
    ``named``: how the log names the attempt (an item's: ``item 3 attempt 2``)."""

    def cancel(as_status: JobStatus, force: bool, reason: str) -> None:
        draft.cancel_job(node.id, attempt.number, as_status, force, reason, named=named)

    if attempt.cancel_requested:
        if stop is not None and stop.force and attempt.stopping_for_timeout:
            # A timeout stops with the normal grace; a forced cancel must not wait it out.
            cancel(JobStatus.CANCELLED, True, stop.reason)
        return  # a cancel is under way; the job's end will be reported
    if attempt.status == JobStatus.PENDING and node.placement_timeout and stop is None:
        # No agent took the job in time: it fails, not retried (no agent would take a retry
        # either); the runtime's timer row wakes the execution at the due time.
        placed_by = attempt.created_at + node.placement_timeout
        if draft.now >= placed_by:
            cancel(JobStatus.FAILED, False, unplaced(node, attempt.unplaced_reason))
            return
        draft.wake(placed_by)
    timeout = step_timeout(node)
    if timeout is not None and attempt.started_at is not None:
        due = attempt.started_at + timeout
        if draft.now >= due:
            reason = f"timed out after {format_duration(timeout)}"
            cancel(JobStatus.TIMEOUT, True, reason)
            return
        draft.wake(due)
    if stop is None:
        return
    if stop.force:
        cancel(JobStatus.CANCELLED, True, stop.reason)
    elif attempt.status == JobStatus.PENDING:
        cancel(JobStatus.CANCELLED, False, stop.reason)
