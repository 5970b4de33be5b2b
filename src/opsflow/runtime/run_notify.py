"""Run-end messages: the workflow's ``notify: [{on, channel, message}]``, queued as a run ends.

Each entry whose ``on`` holds the status the run ended with becomes one outbox row, written in
the transaction that ends the run (the reconcile holding the execution's row lock), so a crash
either keeps both the end and the message or neither. The row is keyed by execution, entry and
status: a run retried after it ended and ending the same way again is not announced twice,
while one that ends another way is. ``runtime/outbox.py`` sends the rows, with retries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sqlalchemy.orm import Session

from opsflow.errors import TemplateError
from opsflow.runtime import events
from opsflow.runtime.changes import Changes
from opsflow.runtime.context import ServerFacts, template_context
from opsflow.spec.notifications import DEFAULT_ON, run_notifications
from opsflow.spec.sandbox import budget
from opsflow.spec.template import render
from opsflow.status import ExecutionStatus, StepStatus
from opsflow.store import approvals as approvals_store
from opsflow.store import runs as runs_store
from opsflow.store.runs import Execution, Step

# Step statuses that name "the step that failed" in a run's summary, by the run's status.
_CULPRITS: dict[ExecutionStatus, tuple[StepStatus, ...]] = {
    ExecutionStatus.FAILED: (StepStatus.FAILED,),
    ExecutionStatus.REJECTED: (StepStatus.REJECTED,),
    ExecutionStatus.ERROR: (StepStatus.FAILED,),
}


class EndingRun(Protocol):
    """What queuing needs from the reconcile that ends the run."""

    session: Session
    ex: Execution
    now: float
    changes: Changes

    def server_facts(self) -> ServerFacts: ...
    def full_steps(self) -> dict[str, Step]: ...
    def engine_log(self, message: str, step: str | None = None) -> None: ...


def summary(ex: Execution, steps: Mapping[str, Step], now: float) -> dict[str, Any]:
    """The run's summary as ``execution.*`` fields of a run-end message: status,
    status_reason, ended_at (epoch seconds), duration (seconds from start, or creation for a
    run that never started), failed_step and error (the earliest-ended failed or rejected
    step and its error; None when there is none)."""
    ended = ex.ended_at or now
    began = ex.started_at or ex.created_at
    culprits = _CULPRITS.get(ex.status, ())
    failed = sorted(
        (s for s in steps.values() if s.status in culprits),
        key=lambda s: (s.ended_at or ended, s.position),
    )
    first = failed[0] if failed else None
    return {
        "status": ex.status.value,
        "status_reason": ex.status_reason or "",
        "ended_at": ended,
        "duration": round(max(0.0, ended - began), 3),
        "failed_step": first.step_id if first else None,
        "error": (first.error if first else None) or (ex.status_reason if culprits else None),
    }


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.1f}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def default_message(workflow_title: str, run: Mapping[str, Any]) -> str:
    """The message an entry without ``message`` sends: the summary in a few lines."""
    lines = [
        f"{workflow_title}: execution {run['id']} {run['status']} after "
        f"{_duration(float(run['duration']))}."
    ]
    if run.get("failed_step"):
        lines.append(f"Step {run['failed_step']} {run['status']}: {run.get('error') or '-'}")
    elif run.get("status_reason"):
        lines.append(str(run["status_reason"]))
    lines.append(str(run["url"]))
    return "\n".join(lines)


def queue_run_end(run: EndingRun) -> int:
    """Queue the messages of the workflow's run-end entries that match the status the run
    just ended with; returns how many rows were added. A message template that fails to
    render sends the default message with the reason appended (the failure is also written
    to the engine log), so a run's end is never silently unannounced."""
    entries = run_notifications(run.ex.definition)
    status = run.ex.status
    wanted = [
        (index, entry)
        for index, entry in enumerate(entries)
        if status.value in (entry.get("on") or [s.value for s in DEFAULT_ON])
    ]
    if not wanted:
        return 0
    steps = run.full_steps()
    context = template_context(run.ex, steps, run.server_facts(), secrets_for="a run-end message")
    context["execution"] = {**context["execution"], **summary(run.ex, steps, run.now)}
    title_of = str(run.ex.definition.get("name") or run.ex.workflow_id)
    added = 0
    for index, entry in wanted:
        fallback = default_message(title_of, context["execution"])
        try:
            with budget():
                message = (
                    render(str(entry["message"]), context, where=f"notify[{index}].message")
                    if entry.get("message")
                    else fallback
                )
                title = (
                    render(str(entry["title"]), context, where=f"notify[{index}].title")
                    if entry.get("title")
                    else f"{title_of} {status.value}"
                )
        except TemplateError as exc:
            run.engine_log(f"run-end notification notify[{index}]: {exc.message}")
            message = f"{fallback}\n(the message could not be rendered: {exc.message})"
            title = f"{title_of} {status.value}"
        channel = str(entry.get("connection") or entry.get("channel"))
        if approvals_store.enqueue_notification(
            run.session,
            channel=channel,
            title=title,
            message=message,
            now=run.now,
            execution_id=run.ex.id,
            key=f"run-end:{run.ex.id}:{index}:{status.value}",
        ):
            added += 1
            run.engine_log(f"run-end notification notify[{index}] queued for channel {channel}")
    if added:
        run.changes.notifications = True
    return added


class UnstartedEnd:
    """An `EndingRun` for a run that ended before it started (refused by its workflow's
    concurrency policy ``skip``): no reconcile holds it, so this reads what queuing needs."""

    def __init__(
        self,
        session: Session,
        execution_id: str,
        now: float,
        changes: Changes,
        facts: Callable[[Session], ServerFacts],
    ) -> None:
        self.session = session
        self.ex = runs_store.get_execution(session, execution_id)
        self.now = now
        self.changes = changes
        self._facts = facts

    def server_facts(self) -> ServerFacts:
        return self._facts(self.session)

    def full_steps(self) -> dict[str, Step]:
        return {s.step_id: s for s in runs_store.list_steps(self.session, self.ex.id)}

    def engine_log(self, message: str, step: str | None = None) -> None:
        entry = {"execution_id": self.ex.id, "step_id": step, "at": self.now, "message": message}
        runs_store.add_engine_log(self.session, [entry])
        events.write_one(self.session, self.ex.id, self.now, events.EngineNote(step, message))
