"""Failure handling and the execution's outcome.

A FAILED step is *handled* while some step with a ``<id>.failed`` or ``<id>.always`` edge has
not been skipped or cancelled (it may still run, or it ran); a REJECTED approval likewise with
``<id>.rejected`` or ``<id>.always``. So a declared handler that ends up skipped (its other needs
died) leaves the failure unhandled. A step skipped by a user counts as having run.

While a failure or a rejection is unhandled the execution is *halting*: in-flight work finishes
(running jobs, their retries, open approvals), nothing new starts except handlers (steps whose
needs include a ``.failed``, ``.rejected`` or ``.always`` edge), and once nothing is active the
steps that never ran are SKIPPED. The outcome is then FAILED (naming the failed steps), else
REJECTED (naming the rejected approvals): failure wins over rejection. Otherwise, when every step
is terminal, COMPLETED.

A person's retry or skip resumes the execution (``resumed_at``): failures and rejections that
ended before it no longer hold new steps back, since the person has seen them and chose to go
on, but they still decide the outcome. So retrying one of two failed steps lets it and its
downstream run, and the run still ends FAILED for the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsflow.engine.draft import Draft
from opsflow.status import ExecutionStatus, StepStatus

_NOT_RUN = frozenset({StepStatus.SKIPPED, StepStatus.CANCELLED})


@dataclass(frozen=True)
class Unhandled:
    """Steps whose failure or rejection nothing handles (definition order)."""

    failed: tuple[str, ...]
    rejected: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.failed or self.rejected)

    def verdict(self) -> tuple[ExecutionStatus, str]:
        """The execution's end when these are what went wrong; failure wins over rejection."""
        if self.failed:
            return ExecutionStatus.FAILED, _name("step", self.failed, "failed")
        return ExecutionStatus.REJECTED, _name("approval", self.rejected, "was rejected")


def _name(kind: str, ids: tuple[str, ...], verb: str) -> str:
    if len(ids) == 1:
        return f"{kind} {ids[0]} {verb}"
    return f"{kind}s {', '.join(ids)} {verb.replace('was', 'were')}"


def unhandled(draft: Draft) -> Unhandled:
    """Which failures and rejections no live handler covers, as of ``draft``."""

    def handled(source: str, handlers: dict[str, tuple[str, ...]]) -> bool:
        return any(
            draft.status[h] not in _NOT_RUN or draft.states[h].user_skipped
            for h in handlers.get(source, ())
        )

    shape = draft.shape
    failed = tuple(
        sid
        for sid in draft.order
        if draft.status[sid] == StepStatus.FAILED and not handled(sid, shape.failure_handlers)
    )
    rejected = tuple(
        sid
        for sid in draft.order
        if draft.status[sid] == StepStatus.REJECTED and not handled(sid, shape.rejection_handlers)
    )
    return Unhandled(failed, rejected)


def halting(draft: Draft, resumed_at: float | None) -> Unhandled:
    """The unhandled failures and rejections that hold new steps back: those since the resume."""
    found = unhandled(draft)
    if resumed_at is None:
        return found

    def recent(sid: str) -> bool:
        ended = draft.entered_at[sid]
        return ended is None or ended >= resumed_at

    return Unhandled(tuple(filter(recent, found.failed)), tuple(filter(recent, found.rejected)))
