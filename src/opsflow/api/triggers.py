"""A workflow's triggers: enable or disable one, fire a schedule now.

The trigger ingress (``POST /hooks/{key}``) and the trigger list live beside these routes;
what starts a run is always `opsflow.triggers.fire.fire`.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from opsflow.api.execution_models import iso
from opsflow.api.problems import error_responses
from opsflow.api.secrets import VAULT_KEY
from opsflow.api.security import require
from opsflow.api.services import Services, services_of
from opsflow.auth.credentials import Principal
from opsflow.auth.permissions import Permission
from opsflow.auth.secrets import SecretVault
from opsflow.errors import Conflict
from opsflow.spec.fields import WORKFLOW_ID_PATTERN
from opsflow.spec.triggers import TriggerType
from opsflow.store import audit
from opsflow.store import triggers as triggers_store
from opsflow.store.session import Session
from opsflow.store.triggers import Trigger
from opsflow.store.workflows import WorkflowVersion
from opsflow.triggers import sync
from opsflow.triggers.fire import Event, fire
from opsflow.triggers.schedule import local_time
from opsflow.triggers.scheduler import SCHEDULER_KEY, Scheduler

router = APIRouter(tags=["triggers"])

POLLER_KEY = "git_poller"  # services.extra[POLLER_KEY]: the server's GitPoller, if any

WorkflowId = Annotated[str, Path(pattern=WORKFLOW_ID_PATTERN, description="The workflow's id.")]
TriggerName = Annotated[
    str, Path(description="The trigger's name: its YAML `key`, else `<type>-<n>`.")
]
Editor = Annotated[Principal, Depends(require(Permission.WORKFLOWS_UPDATE))]
Runner = Annotated[Principal, Depends(require(Permission.WORKFLOWS_RUN))]


class TriggerOut(BaseModel):
    """One trigger of a workflow, as the server keeps it."""

    name: str = Field(description="Its YAML `key`, else `<type>-<n>` (n counts per type).")
    type: TriggerType
    enabled: bool
    spec: dict[str, Any] = Field(description="The trigger as the latest version declares it.")
    next_due_at: str | None = Field(
        description="When the scheduler looks at it next (schedules); null otherwise."
    )

    @classmethod
    def of(cls, trigger: Trigger) -> TriggerOut:
        return cls(
            name=trigger.name,
            type=TriggerType(trigger.type),
            enabled=trigger.enabled,
            spec=trigger.spec,
            next_due_at=iso(trigger.next_due_at),
        )


class FireOut(BaseModel):
    execution_id: str
    url: str = Field(description="The execution's API URL, under the server's public URL.")


def schedule_now(services: Services) -> float:
    """Now, as the scheduler counts time (a test clock when the server runs one)."""
    scheduler: Scheduler | None = services.extra.get(SCHEDULER_KEY)
    return scheduler.clock.now() if scheduler is not None else time.time()


def wake_scheduler(services: Services) -> None:
    """A trigger's wake time may have moved (publish, resume, enable): look again now rather
    than at the time the scheduler planned. Call after the commit."""
    for key in (SCHEDULER_KEY, POLLER_KEY):
        waker = services.extra.get(key)
        if waker is not None:
            waker.wake()


def publish_with_triggers(
    session: Session, workflow_id: str, actor: str, services: Services
) -> tuple[WorkflowVersion, bool]:
    """Publish the draft and sync its triggers in the caller's transaction (the caller calls
    `wake_scheduler` after it commits)."""
    vault: SecretVault = services.extra[VAULT_KEY]
    return sync.publish(session, workflow_id, actor, vault.box, schedule_now(services))


def _switch(request: Request, workflow_id: str, name: str, enabled: bool, actor: str) -> Trigger:
    services = services_of(request)
    with services.session() as session:
        trigger = sync.set_enabled(session, workflow_id, name, enabled, schedule_now(services))
        action = "trigger.enable" if enabled else "trigger.disable"
        audit.record(session, actor, action, f"{workflow_id}/{name}")
    wake_scheduler(services)
    return trigger


@router.post(
    "/workflows/{workflow_id}/triggers/{name}/disable",
    response_model=TriggerOut,
    responses=error_responses(401, 403, 404),
)
def disable_trigger(
    request: Request, workflow_id: WorkflowId, name: TriggerName, principal: Editor
) -> TriggerOut:
    """Stop this trigger from starting runs (the workflow's other triggers go on)."""
    return TriggerOut.of(_switch(request, workflow_id, name, False, principal.name))


@router.post(
    "/workflows/{workflow_id}/triggers/{name}/enable",
    response_model=TriggerOut,
    responses=error_responses(401, 403, 404),
)
def enable_trigger(
    request: Request, workflow_id: WorkflowId, name: TriggerName, principal: Editor
) -> TriggerOut:
    """Let this trigger start runs again (a schedule resumes at its next instant)."""
    return TriggerOut.of(_switch(request, workflow_id, name, True, principal.name))


@router.post(
    "/workflows/{workflow_id}/triggers/{name}/fire",
    status_code=201,
    response_model=FireOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def fire_trigger(
    request: Request, workflow_id: WorkflowId, name: TriggerName, principal: Runner
) -> FireOut:
    """Fire a schedule now, by hand, with its params (409 when the trigger is disabled). A
    hand fire is a manual act: like a run started by hand it is allowed while the workflow is
    paused. The run records the person as its actor."""
    services = services_of(request)
    with services.db.read() as session:
        trigger = triggers_store.get(session, workflow_id, name)
    if trigger.type != TriggerType.SCHEDULE:
        raise Conflict(
            f"trigger {name!r} is a {trigger.type} trigger: only a schedule can be fired by "
            "hand (a webhook fires on POST /hooks/<key>; to run the workflow, start a run)"
        )
    runtime = services.extra["runtime"].runtime
    now = time.time()
    timezone = str(trigger.spec.get("timezone") or "UTC")
    fired = fire(
        runtime,
        trigger.id,
        Event(
            source=f"{trigger.name}, fired by hand",
            actor=principal.name,
            # In the schedule's zone, like the instants the scheduler fires.
            details={"instant": local_time(now, timezone), "manual": True},
            by_hand=True,
        ),
        claim=lambda s, eid: triggers_store.claim_fire(s, trigger.id, now, eid, now, kind="manual"),
    )
    with services.session() as session:  # the schedule's "last fire" is this one now
        triggers_store.merge_state(
            session,
            trigger.id,
            last_instant=now,
            last_execution_id=fired.execution_id,
            last_error=None,
        )
    # The server's public address: its bind address may be 0.0.0.0 or behind a proxy.
    base = services.settings.public_base
    return FireOut(
        execution_id=fired.execution_id,
        url=f"{base}/api/v1/executions/{fired.execution_id}",
    )
