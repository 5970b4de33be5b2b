"""Liveness, readiness, the workflow JSON Schema, and the audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from opsflow.api.limits import INT_MAX
from opsflow.api.problems import error_responses
from opsflow.api.security import require
from opsflow.api.services import services_of
from opsflow.auth.credentials import Principal
from opsflow.auth.permissions import Permission
from opsflow.errors import InvalidInput, Problem
from opsflow.spec.schema import workflow_json_schema
from opsflow.store import audit
from opsflow.store.health import ping

probes = APIRouter(tags=["health"])
router = APIRouter(tags=["meta"])


@probes.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up (no dependencies checked)."""
    return {"status": "ok"}


@probes.get("/readyz", responses={503: {"description": "The database is unreachable"}})
def readyz(request: Request) -> JSONResponse:
    """The database answers; 503 otherwise, so a load balancer sends traffic elsewhere."""
    error = ping(services_of(request).db)
    if error is not None:
        return JSONResponse({"status": "unavailable", "database": error}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/schema/workflow", responses=error_responses(401, 403))
def workflow_schema(
    _p: Annotated[Principal, Depends(require(Permission.WORKFLOWS_READ))],
) -> dict[str, Any]:
    """The JSON Schema of workflow YAML, for editors."""
    return workflow_json_schema()


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditOut]
    total: int
    limit: int
    offset: int


def _when(value: str | None, name: str) -> datetime | None:
    if value is None or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        msg = f"{value!r} is not an ISO 8601 date or time, e.g. 2026-11-25T10:00:00Z"
        raise InvalidInput(f"{name}: {msg}", problems=[Problem(f"query.{name}", msg)]) from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:  # stored and compared in UTC: 0001-01-01T00:00+14:00 is before the year 1 there
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        msg = f"{value!r} lies outside the years 1 to 9999 in UTC"
        raise InvalidInput(f"{name}: {msg}", problems=[Problem(f"query.{name}", msg)]) from exc


@router.get("/audit", response_model=AuditPage, responses=error_responses(401, 403))
def list_audit(
    request: Request,
    _p: Annotated[Principal, Depends(require(Permission.AUDIT_READ))],
    actor: str | None = None,
    action: Annotated[str | None, Query(description="Prefix, e.g. `workflow.`")] = None,
    target: str | None = None,
    since: Annotated[str | None, Query(description="At or after (ISO 8601).")] = None,
    until: Annotated[str | None, Query(description="Before (ISO 8601).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=INT_MAX)] = 0,
) -> AuditPage:
    """Who changed what, newest first: runs, cancels, approvals, retries and skips,
    workflow changes and publishes, secrets, tokens, log-ins, users and teams, agents.
    ``actor`` and ``target`` match exactly, ``action`` by prefix; 422 names ``since`` or
    ``until`` when it is not an ISO 8601 time."""
    start, end = _when(since, "since"), _when(until, "until")
    with services_of(request).session() as session:
        page = audit.list_audit(
            session,
            actor=actor,
            action=action,
            target=target,
            since=start,
            until=end,
            limit=limit,
            offset=offset,
        )
    return AuditPage(
        items=[AuditOut(**vars(r)) for r in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )
