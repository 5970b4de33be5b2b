"""``GET /schedules``: every schedule of every workflow, when it fires next, the next five
instants, and how its last fire went."""

from __future__ import annotations

import itertools
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from opsflow.api.problems import error_responses
from opsflow.api.security import require
from opsflow.api.services import services_of
from opsflow.auth.credentials import Principal
from opsflow.auth.permissions import Permission
from opsflow.errors import NotFound
from opsflow.spec.triggers import TriggerType
from opsflow.status import WorkflowStatus
from opsflow.store import runs as runs_store
from opsflow.store import triggers as triggers_store
from opsflow.store import workflows as workflows_store
from opsflow.store.session import Session
from opsflow.store.triggers import Trigger
from opsflow.triggers.cron import CronNeverFires, instants
from opsflow.triggers.schedule import BROKEN, local_time
from opsflow.triggers.scheduler import SCHEDULER_KEY, Scheduler, SchedulerClock

router = APIRouter(tags=["schedules"])

Lister = Annotated[Principal, Depends(require(Permission.WORKFLOWS_LIST))]
PREVIEW = 5


class LastFire(BaseModel):
    instant: str = Field(description="The scheduled instant, in the schedule's time zone.")
    execution_id: str | None = Field(description="The run it started; null if it did not.")
    status: str | None = Field(
        description="The run's status now, or `not started` with `error` saying why."
    )
    error: str | None = Field(None, description="Why no run started (paused, bad params...).")


class ScheduleOut(BaseModel):
    workflow_id: str
    workflow_name: str
    workflow_status: WorkflowStatus
    name: str = Field(description="The trigger's name, `schedule-<n>` (n counts per workflow).")
    cron: str
    timezone: str
    missed: str = Field(description="skip, run-once or all.")
    params: dict[str, Any]
    enabled: bool
    next_fire_at: str | None = Field(
        description="The next instant it fires, in its time zone; null while the workflow "
        "is paused or the trigger disabled."
    )
    preview: list[str] = Field(description="The next five instants of the cron line.")
    last_fire: LastFire | None = Field(description="The latest instant handled; null if none.")
    error: str | None = Field(
        None,
        description="Why the schedule cannot fire at all (a cron line that matches no date, "
        "stored before opsflow refused such lines); null when it can.",
    )


def _last(session: Session, trigger: Trigger, timezone: str) -> LastFire | None:
    state = trigger.state
    instant = state.get("last_instant")
    if instant is None:
        return None
    execution_id = state.get("last_execution_id")
    status: str | None = "not started"
    if execution_id:
        try:
            status = runs_store.get_execution(session, str(execution_id)).status.value
        except NotFound:
            status = None
    return LastFire(
        instant=local_time(float(instant), timezone),
        execution_id=str(execution_id) if execution_id else None,
        status=status,
        error=state.get("last_error"),
    )


@router.get("/schedules", response_model=list[ScheduleOut], responses=error_responses(401, 403))
def list_schedules(request: Request, _p: Lister) -> list[ScheduleOut]:
    """Every schedule of every workflow not deleted, by workflow."""
    services = services_of(request)
    scheduler: Scheduler | None = services.extra.get(SCHEDULER_KEY)
    now = (scheduler.clock if scheduler is not None else SchedulerClock()).now()
    out: list[ScheduleOut] = []
    with services.db.read() as session:
        for trigger in triggers_store.list_of_type(session, TriggerType.SCHEDULE.value):
            workflow = workflows_store.get_workflow(session, trigger.workflow_id)
            spec = trigger.spec
            timezone = str(spec.get("timezone") or "UTC")
            live = trigger.enabled and workflow.status == WorkflowStatus.ACTIVE
            start = now if trigger.next_due_at is None else min(now, trigger.next_due_at - 1)
            try:
                upcoming = list(
                    itertools.islice(instants(str(spec["cron"]), timezone, start), PREVIEW)
                )
            except CronNeverFires:
                upcoming = []  # a line stored before the spec refused it; its state says so
            out.append(
                ScheduleOut(
                    workflow_id=workflow.id,
                    workflow_name=workflow.name,
                    workflow_status=workflow.status,
                    name=trigger.name,
                    cron=str(spec["cron"]),
                    timezone=timezone,
                    missed=str(spec.get("missed") or "skip"),
                    params=dict(spec.get("params") or {}),
                    enabled=trigger.enabled,
                    next_fire_at=(
                        local_time(trigger.next_due_at, timezone)
                        if live and trigger.next_due_at is not None
                        else None
                    ),
                    preview=[local_time(i, timezone) for i in upcoming],
                    last_fire=_last(session, trigger, timezone),
                    error=trigger.state.get(BROKEN),
                )
            )
    return out
