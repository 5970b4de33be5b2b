"""Run-end messages: the workflow's ``notify: [{on, channel, message}]``, queued as a run ends.

Each entry whose ``on`` holds the status the run ended with becomes one outbox row, written in
the transaction that ends the run (the reconcile holding the execution's row lock), so a crash
either keeps both the end and the message or neither. The row is keyed by execution, entry and
status: a run retried after it ended and ending the same way again is not announced twice,
while one that ends another way is. ``runtime/outbox.py`` sends the rows, with retries. A
test run (``--test``, the editor's Run test) queues none and says so in its engine log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sqlalchemy.orm import Session

from opsflow.engine.attempts import without_unhandled_note
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

# Apprise's message types (``apprise.NotifyType``), by how the run ended: chat services colour
# or mark a message by it.
_APPRISE_TYPES: dict[str, str] = {
    ExecutionStatus.COMPLETED.value: "success",
    ExecutionStatus.FAILED.value: "failure",
    ExecutionStatus.ERROR.value: "failure",
    ExecutionStatus.REJECTED.value: "warning",
    ExecutionStatus.CANCELLED.value: "warning",
}
KEY_PREFIX = "run-end"


def apprise_type(key: str | None) -> str:
    """The Apprise type of the outbox row keyed ``key``: a run-end message's (``run-end:<id>:
    <entry>:<status>``, see `queue_run_end`) follows the run's status; any other is info."""
    if not key or not key.startswith(f"{KEY_PREFIX}:"):
        return "info"
    return _APPRISE_TYPES.get(key.rsplit(":", 1)[-1], "info")


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
    step and its error; None when there is none) and failed_steps (every such step, earliest
    first, as ``{id, error}``)."""
    ended = ex.ended_at or now
    began = ex.started_at or ex.created_at
    culprits = _CULPRITS.get(ex.status, ())
    failed = sorted(
        (s for s in steps.values() if s.status in culprits),
        key=lambda s: (s.ended_at or ended, s.position),
    )
    first = failed[0] if failed else None
    error = (first.error if first else None) or (ex.status_reason if culprits else None)
    return {
        "status": ex.status.value,
        "status_reason": ex.status_reason or "",
        "ended_at": ended,
        "duration": round(max(0.0, ended - began), 3),
        "failed_step": first.step_id if first else None,
        "error": without_unhandled_note(error) if error else None,
        "failed_steps": [
            {"id": s.step_id, "error": without_unhandled_note(s.error) if s.error else None}
            for s in failed
        ],
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
    culprits = list(run.get("failed_steps") or [])
    if culprits:
        lines.extend(f"Step {s['id']} {run['status']}: {s.get('error') or '-'}" for s in culprits)
    elif run.get("failed_step"):
        lines.append(f"Step {run['failed_step']} {run['status']}: {run.get('error') or '-'}")
    elif run.get("status_reason"):
        lines.append(str(run["status_reason"]))
    lines.append(str(run["url"]))
    return "\n".join(lines)


def queue_run_end(run: EndingRun) -> int:
    """Queue the messages of the workflow's run-end entries that match the status the run
    just ended with; returns how many rows were added. A message or title template that
    fails to render is replaced by its default (the message's with the reason appended; the
    failure is also written to the engine log), so a run's end is never silently
    unannounced. A test run sends none: each entry it would have sent is named in its engine
    log."""
    entries = run_notifications(run.ex.definition)
    status = run.ex.status
    wanted = [
        (index, entry)
        for index, entry in enumerate(entries)
        if status.value in (entry.get("on") or [s.value for s in DEFAULT_ON])
    ]
    if not wanted:
        return 0
    if run.ex.test_run:
        for index, entry in wanted:
            run.engine_log(
                f"test run: run-end notification notify[{index}] to channel "
                f"{_channel(entry)} not sent"
            )
        return 0
    steps = run.full_steps()
    facts = run.server_facts()
    context = template_context(run.ex, steps, facts, secrets_for="a run-end message")
    context["execution"] = {**context["execution"], **summary(run.ex, steps, run.now)}
    title_of = str(run.ex.definition.get("name") or run.ex.workflow_id)
    added = 0
    for index, entry in wanted:
        fallback = default_message(title_of, context["execution"])
        message = _render(run, entry, "message", context, index)
        if message is None:
            message = fallback
        elif isinstance(message, TemplateError):
            message = f"{fallback}\n(the message could not be rendered: {message.message})"
        title = _render(run, entry, "title", context, index)
        if not isinstance(title, str):
            title = f"{title_of} {status.value}"
        channel = _channel(entry)
        if approvals_store.enqueue_notification(
            run.session,
            channel=channel,
            title=title,
            message=message,
            now=run.now,
            execution_id=run.ex.id,
            key=f"{KEY_PREFIX}:{run.ex.id}:{index}:{status.value}",
        ):
            added += 1
            run.engine_log(f"run-end notification notify[{index}] queued for channel {channel}")
    if added:
        run.changes.notifications = True
    return added


def _channel(entry: Mapping[str, Any]) -> str:
    return str(entry.get("connection") or entry.get("channel"))


def _render(
    run: EndingRun, entry: Mapping[str, Any], field: str, context: dict[str, Any], index: int
) -> str | TemplateError | None:
    """An entry's ``message`` or ``title`` rendered; None when the entry has none, the error
    (also written to the engine log) when it fails."""
    if not entry.get(field):
        return None
    try:
        with budget():
            return render(str(entry[field]), context, where=f"notify[{index}].{field}")
    except TemplateError as exc:
        run.engine_log(f"run-end notification notify[{index}]: {exc.message}")
        return exc


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
