"""The one way a trigger starts an execution: `fire`.

Every trigger type (schedule, webhook, git, incident) ends here, so the rules are kept once:
only an Active workflow fires (Paused, Draft and deleted ones never do), only an enabled
trigger the latest version declares; the trigger's ``params`` are rendered in the sandboxed
template renderer over what the event delivered and checked against the workflow's params;
the execution records its trigger (type, name, source, actor) and the template context it
sees (``trigger.*``, ``git.*``, ``incident.*``); the workflow's ``concurrency`` applies as to
a manual run. The deduplication row of the event (a schedule instant's fire row, a
delivery's row) is written in the same transaction as the execution, by the caller's
`Claim`: either both commit or neither does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from opsflow.errors import Conflict, InvalidInput, Problem, TemplateError
from opsflow.runtime.changes import Changes
from opsflow.runtime.context import SecretsRefused
from opsflow.runtime.definitions import published_version, workflow_model
from opsflow.runtime.launch import pinned_request
from opsflow.runtime.reconciler import new_id
from opsflow.runtime.service import Runtime
from opsflow.spec.params import Param
from opsflow.spec.sandbox import budget
from opsflow.spec.template import is_template, render_value
from opsflow.status import WorkflowStatus
from opsflow.store import runs as runs_store
from opsflow.store import triggers as store
from opsflow.store.workflows import Workflow

# Claims the event's deduplication row for the new execution (whose id it is given) in the
# transaction that creates it. Returns None when the row is now this transaction's, or the id
# of the execution an earlier, committed claim of the same event started (then nothing is
# created and `fire` answers with that execution).
Claim = Callable[[Session, str], str | None]


class TriggerRefused(Conflict):
    """The trigger may not start a run now."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        # A short word for logs and delivery records: paused, draft, deleted, disabled,
        # retired.
        self.reason = reason


@dataclass(frozen=True)
class Event:
    """What a trigger's source delivered, as `fire` needs it.

    ``source`` says which event it was for people (the trigger record's ``source``): a
    schedule's instant, a webhook's key, ``github acme/infra@<sha>``, an alert fingerprint.
    ``actor`` is who or what started the run (``execution.started_by``); None means
    ``<type>:<name>``, e.g. ``schedule:nightly``. ``body`` becomes ``trigger.body``;
    ``params`` are params the source asked for (a webhook body's ``params``): the trigger's
    own YAML ``params`` are rendered over ``trigger`` and win over these. ``context`` adds
    template names the run sees (``{"git": {...}}``, ``{"incident": {...}}``). ``details``
    go into the trigger record as they are (``instant``, ``delivery_id``, ...; JSON values).
    ``notes`` are engine-log lines for the new run (a catch-up after downtime, say).
    """

    source: str
    actor: str | None = None
    body: Any = None
    params: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    notes: Sequence[str] = ()
    # The workflows whose runs led to this one (a workflow trigger's upstream chain).
    chain: tuple[str, ...] = ()
    # A person fired it (a schedule's "fire now"): a manual act, so like a run started by
    # hand it may start while the workflow is paused.
    by_hand: bool = False


@dataclass(frozen=True)
class Fired:
    """The execution the event started, or (``created`` False) the one an earlier delivery
    of the same event started."""

    execution_id: str
    created: bool


def fire(runtime: Runtime, trigger_id: int, event: Event, *, claim: Claim | None = None) -> Fired:
    """Start an execution of the trigger's workflow for ``event``, in one transaction with
    the ``claim`` of its deduplication row.

    Raises, with nothing written:

    - `TriggerRefused` (409; ``.reason``): the workflow is paused, a draft, or deleted; the
      trigger is disabled or no longer declared by the latest version;
    - `InvalidInput` (422): the params, located as ``params.<name>``: a template of the
      trigger's ``params`` failed to render, or a value does not suit the workflow's params
      (unknown, wrong type, a required one missing);
    - `opsflow.errors.NotFound` (404): no trigger ``trigger_id``.

    A claim that finds the event already fired wins over every refusal: a repeat of a
    delivery that started a run answers with that run even after the workflow was paused.
    """
    return runtime.transact(
        lambda session, changes: fire_in(runtime, session, changes, trigger_id, event, claim=claim)
    )


def fire_in(
    runtime: Runtime,
    session: Session,
    changes: Changes,
    trigger_id: int,
    event: Event,
    *,
    claim: Claim | None = None,
) -> Fired:
    """`fire` inside the caller's transaction (a workflow trigger fires in the transaction
    in which the run it follows ended)."""
    # The workflow's row lock orders this against pause, resume and publish; the row read
    # with it is the workflow as of the lock.
    workflow = store.lock_workflow_of(session, trigger_id)
    execution_id = new_id()
    if claim is not None:
        earlier = claim(session, execution_id)
        if earlier is not None:
            return Fired(earlier, created=False)
    trigger = store.get_by_id(session, trigger_id)  # as of the lock
    version = _check_may_fire(trigger, workflow, by_hand=event.by_hand)
    pinned = published_version(session, workflow, version)
    actor = event.actor or f"{trigger.type}:{trigger.name}"
    seen: dict[str, Any] = {
        **event.details,
        "type": trigger.type,
        "name": trigger.name,
        "source": event.source,
        "body": event.body,
        "params": dict(event.params),
    }
    context = _context(workflow, seen, event, execution_id, actor)
    declared = workflow_model(pinned.definition).params  # parsed once per definition
    rendered = _render_params(trigger.spec.get("params") or {}, context, declared)
    params = {**event.params, **rendered}
    record = {**seen, **{name: dict(value) for name, value in event.context.items()}}
    request = pinned_request(
        pinned,
        params=params,
        started_by=actor,
        trigger_type=trigger.type,
        trigger=record,
        chain=event.chain,
    )
    runtime.start_in(session, changes, request, execution_id=execution_id)
    if event.notes:
        at = runtime.clock()
        runs_store.add_engine_log(
            session,
            [
                {"execution_id": execution_id, "step_id": None, "at": at, "message": note}
                for note in event.notes
            ],
        )
    return Fired(execution_id, created=True)


def _check_may_fire(trigger: store.Trigger, workflow: Workflow, *, by_hand: bool) -> int:
    """The workflow's latest version number, if the trigger may fire now; else
    `TriggerRefused`. A paused workflow refuses its triggers but not a person firing one by
    hand."""
    where = f"trigger {trigger.name!r} of workflow {trigger.workflow_id!r}"
    if workflow.deleted_at is not None:
        raise TriggerRefused(f"{where}: the workflow was deleted", "deleted")
    if workflow.status == WorkflowStatus.PAUSED and not by_hand:
        raise TriggerRefused(
            f"{where}: the workflow is paused; triggers start runs again when it is resumed",
            "paused",
        )
    published = workflow.status in (WorkflowStatus.ACTIVE, WorkflowStatus.PAUSED)
    if not published or workflow.latest_version is None:
        raise TriggerRefused(f"{where}: the workflow was never published", "draft")
    if trigger.retired_at is not None:
        raise TriggerRefused(
            f"{where}: the latest version no longer declares this trigger", "retired"
        )
    if not trigger.enabled:
        raise TriggerRefused(
            f"{where} is disabled; enable it with POST /api/v1/workflows/"
            f"{trigger.workflow_id}/triggers/{trigger.name}/enable",
            "disabled",
        )
    return workflow.latest_version


def _context(
    workflow: Workflow,
    seen: Mapping[str, Any],
    event: Event,
    execution_id: str,
    actor: str,
) -> dict[str, Any]:
    """What a trigger's ``params`` templates may read (the names ``spec.checks`` allows)."""
    return {
        "trigger": dict(seen),
        "git": dict(event.context.get("git") or {}),
        "incident": dict(event.context.get("incident") or {}),
        "workflow": {
            "id": workflow.id,
            "name": workflow.name,
            "version": workflow.latest_version,
        },
        "execution": {
            "id": execution_id,
            "trigger_type": seen["type"],
            "started_by": actor,
        },
        # A value rendered into params would be stored with the run and shown to anyone who
        # may read it: secrets reach a run through a step's env, never through params.
        "secrets": SecretsRefused("a trigger's params"),
    }


def _render_params(
    templates: Mapping[str, Any], context: Mapping[str, Any], declared: Mapping[str, Param]
) -> dict[str, Any]:
    """Each param rendered on its own, so a failure names ``params.<name>``. A template
    renders to text, which is read as the param's declared type (``"3"`` for an integer is
    3), as the CLI's ``-p name=value`` is."""
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    with budget():
        for name, value in templates.items():
            try:
                rendered = render_value(value, context)
            except TemplateError as exc:
                problems.append(Problem(f"params.{name}", exc.message))
                continue
            if isinstance(value, str) and is_template(value) and name in declared:
                rendered = declared[name].from_text(str(rendered))
            out[name] = rendered
    if problems:
        raise InvalidInput("; ".join(f"{p.loc}: {p.msg}" for p in problems), problems=problems)
    return out
