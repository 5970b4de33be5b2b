"""``GET /api/v1/incidents``: the alerts incident triggers received, newest first, each with
whether it still fires and the executions it started."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from opsflow.api.execution_models import iso
from opsflow.api.problems import error_responses
from opsflow.api.security import require
from opsflow.api.services import services_of
from opsflow.auth.credentials import Principal
from opsflow.auth.permissions import Permission
from opsflow.spec.fields import WORKFLOW_ID_PATTERN
from opsflow.spec.triggers import AlertStatus
from opsflow.status import ExecutionStatus
from opsflow.store import incidents as incidents_store
from opsflow.store.incidents import Incident, IncidentRun

router = APIRouter(tags=["incidents"])

Reader = Annotated[Principal, Depends(require(Permission.EXECUTIONS_READ))]


class IncidentExecutionOut(BaseModel):
    """A run the incident started."""

    execution_id: str
    on: AlertStatus = Field(description="The alert's status that started it.")
    status: ExecutionStatus | None = Field(description="The run's status now; null if deleted.")
    created_at: str | None
    url: str = Field(description="The execution's API URL.")


class IncidentOut(BaseModel):
    """One alert from the moment it started firing until it resolved."""

    id: str = Field(description="The server's id of the incident.")
    incident_id: str = Field(
        description="What runs read as incident.id: the alert's fingerprint and start."
    )
    workflow_id: str
    trigger: str = Field(description="The name of the incident trigger that received it.")
    source: str = Field(description="Who sent it: alertmanager.")
    status: AlertStatus = Field(description="firing, or resolved once a notification said so.")
    title: str
    severity: str = Field(description="The alert's severity label ('' without one).")
    fingerprint: str
    labels: dict[str, Any]
    annotations: dict[str, Any]
    starts_at: str = Field(description="When it started firing, as the sender said.")
    ends_at: str = Field(description="When it resolved, as the sender said ('' while firing).")
    generator_url: str
    first_seen_at: str | None
    last_seen_at: str | None
    notifications: int = Field(description="Notifications that carried it (repeats included).")
    executions: list[IncidentExecutionOut] = Field(description="Oldest first.")

    @classmethod
    def of(cls, incident: Incident, base: str) -> IncidentOut:
        return cls(
            id=incident.id,
            incident_id=incident.incident_key,
            workflow_id=incident.workflow_id,
            trigger=incident.trigger_name,
            source=incident.source,
            status=AlertStatus(incident.status),
            title=incident.title,
            severity=incident.severity,
            fingerprint=incident.fingerprint,
            labels=incident.labels,
            annotations=incident.annotations,
            starts_at=incident.starts_at,
            ends_at=incident.ends_at,
            generator_url=incident.generator_url,
            first_seen_at=iso(incident.first_seen_at),
            last_seen_at=iso(incident.last_seen_at),
            notifications=incident.notifications,
            executions=[_run(run, base) for run in incident.executions],
        )


def _run(run: IncidentRun, base: str) -> IncidentExecutionOut:
    return IncidentExecutionOut(
        execution_id=run.execution_id,
        on=AlertStatus(run.alert_status),
        status=ExecutionStatus(run.status) if run.status else None,
        created_at=iso(run.created_at),
        url=f"{base}/api/v1/executions/{run.execution_id}",
    )


@router.get(
    "/incidents", response_model=list[IncidentOut], responses=error_responses(401, 403, 422)
)
def list_incidents(
    request: Request,
    _principal: Reader,
    workflow: Annotated[
        str | None, Query(pattern=WORKFLOW_ID_PATTERN, description="Only this workflow's.")
    ] = None,
    status: Annotated[AlertStatus | None, Query(description="firing or resolved.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[IncidentOut]:
    """Incidents, the most recently notified first, with the executions each one started."""
    with services_of(request).db.read() as session:
        found = incidents_store.list_incidents(
            session,
            workflow_id=workflow,
            status=status.value if status else None,
            limit=limit,
        )
    base = str(request.base_url).rstrip("/")
    return [IncidentOut.of(incident, base) for incident in found]
