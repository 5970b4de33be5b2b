"""``GET /events``: one live stream of what changes across the server, so lists update
without polling.

Three event kinds: ``execution`` (created, changed, ended), ``approval`` (pending, approved,
rejected) and ``workflow`` (created, updated, published, paused, resumed, deleted). Each says
what changed, not the new state: a client refetches what it shows. The stream reads the
execution events and the audit log from the database (what a commit recorded is never
missed; the bus only says when to look), so it resumes after a disconnect from
``Last-Event-ID`` (``<execution event id>-<audit id>``) like the per-execution stream, and
each caller sees only the kinds its role may read. A comment line every 15 seconds
(``OPSFLOW_STREAM_KEEPALIVE_SECONDS``) keeps proxies from closing it, and then the caller's
credentials are checked again: a revoked token or an ended session ends the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from opsflow.api.events import Window, parse_cursor, sse
from opsflow.api.execution_models import iso
from opsflow.api.executions import host_of
from opsflow.api.problems import error_responses
from opsflow.api.security import authenticated, identify
from opsflow.api.services import services_of
from opsflow.auth.browser import SESSION_COOKIE
from opsflow.auth.credentials import Principal
from opsflow.auth.permissions import Permission
from opsflow.errors import Unauthorized
from opsflow.runtime.bus import ANY
from opsflow.runtime.events import CREATED_REASON, EventKind
from opsflow.status import ExecutionStatus
from opsflow.store import feed

router = APIRouter(tags=["events"])

BATCH = 500
# A client further behind than this many execution events is told to refetch (``reset``)
# instead of being replayed the backlog.
MAX_BACKLOG = 10_000


class ExecutionChange(BaseModel):
    """An execution was created, changed (its status, a step or a job) or ended."""

    execution_id: str
    workflow_id: str
    change: Literal["created", "changed", "ended"]
    status: ExecutionStatus | None = Field(
        description="The execution's new status; null when a step or job of it changed."
    )
    at: str | None


class ApprovalChange(BaseModel):
    """An approval gate opened or got an answer (``pending`` also after a partial approval)."""

    execution_id: str
    workflow_id: str
    step: str
    status: Literal["pending", "approved", "rejected"]
    at: str | None


class WorkflowChange(BaseModel):
    """A workflow was created, updated, published, paused, resumed, duplicated or deleted."""

    workflow_id: str
    action: str = Field(description="create, update, publish, pause, resume, duplicate, delete")
    actor: str
    at: str | None


class FeedEvents(BaseModel):
    """The ``data`` of each event kind of ``GET /events``, by its ``event`` name. Also sent:
    ``ready`` (``{}``, first, with the position to resume from), ``reset`` (``{reason}``: the
    client was too far behind; refetch everything) and ``end`` (``{reason}``: the caller's
    credentials ended; log in again)."""

    execution: ExecutionChange
    approval: ApprovalChange
    workflow: WorkflowChange


NEEDS: dict[str, Permission] = {
    "execution": Permission.EXECUTIONS_READ,
    "approval": Permission.EXECUTIONS_READ,
    "workflow": Permission.WORKFLOWS_LIST,
}


def execution_message(row: dict[str, Any]) -> tuple[str, BaseModel]:
    """The event a row of `feed.execution_events_after` becomes."""
    data: dict[str, Any] = row["data"] or {}
    at = iso(row["at"])
    if row["kind"] == EventKind.APPROVAL:
        return "approval", ApprovalChange(
            execution_id=row["execution_id"],
            workflow_id=row["workflow_id"],
            step=data["step"],
            status=data["status"],
            at=at,
        )
    status = ExecutionStatus(data["status"]) if row["kind"] == EventKind.EXECUTION else None
    change: Literal["created", "changed", "ended"] = "changed"
    if status is not None and status.terminal:
        change = "ended"
    elif status == ExecutionStatus.PENDING and data.get("reason") == CREATED_REASON:
        change = "created"
    return "execution", ExecutionChange(
        execution_id=row["execution_id"],
        workflow_id=row["workflow_id"],
        change=change,
        status=status,
        at=at,
    )


def workflow_message(row: dict[str, Any]) -> tuple[str, BaseModel]:
    """The event a row of `feed.workflow_changes_after` becomes."""
    return "workflow", WorkflowChange(
        workflow_id=row["target"],
        action=row["action"].removeprefix(feed.WORKFLOW_ACTIONS),
        actor=row["actor"],
        at=row["at"].isoformat(),
    )


def _by_time(
    evw: Window, events: list[dict[str, Any]], auw: Window, changes: list[dict[str, Any]]
) -> Iterator[tuple[Window, dict[str, Any]]]:
    """Execution events and workflow changes interleaved by time, each source in its own id
    order (a workflow published, then its run created)."""
    i = j = 0
    while i < len(events) or j < len(changes):
        take_event = j >= len(changes) or (
            i < len(events) and events[i]["at"] <= changes[j]["at"].timestamp()
        )
        if take_event:
            yield evw, events[i]
            i += 1
        else:
            yield auw, changes[j]
            j += 1


@router.get(
    "/events",
    responses={
        200: {
            "model": FeedEvents,
            "content": {"text/event-stream": {}},
            "description": "Server-sent events; `data` of each kind as in this schema.",
        },
        **error_responses(401, 422),
    },
)
async def stream_changes(
    request: Request,
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
    after: str | None = Query(None, description="Resume after this event id (as Last-Event-ID)."),
    principal: Principal = Depends(authenticated),
) -> StreamingResponse:
    """Server-sent events of every change a list shows: `execution`, `approval`, `workflow`
    (only the kinds the caller's role may read); resumable with `Last-Event-ID`."""
    services = services_of(request)
    host = host_of(services)
    keepalive = services.settings.stream_keepalive_seconds
    authorization = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    wanted = last_event_id or after
    ev_start, audit_start = parse_cursor(wanted)
    with services.db.read() as session:
        ev_head, audit_head = feed.heads(session)
    reset: str | None = None
    if wanted is None:
        ev_start, audit_start = ev_head, audit_head  # from now on
    elif ev_head - ev_start > MAX_BACKLOG:
        reset = f"more than {MAX_BACKLOG} events behind: refetch what you show"
        ev_start, audit_start = ev_head, audit_head

    def read(ev_floor: int, audit_floor: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        with services.db.read() as session:
            events = feed.execution_events_after(session, ev_floor, BATCH)
            changes = feed.workflow_changes_after(session, audit_floor, BATCH)
        return events, changes

    async def gen() -> AsyncIterator[str]:
        caller = principal
        evw, auw = Window(ev_start), Window(audit_start)
        if reset:
            yield sse(f"{evw.top}-{auw.top}", "reset", {"reason": reset})
        else:
            yield sse(f"{evw.top}-{auw.top}", "ready", {})
        async with host.bus.watch_execution(ANY) as sub:
            while True:
                evw.advance()
                auw.advance()
                events, changes = await asyncio.to_thread(read, evw.floor, auw.floor)
                last: dict[tuple[str, str], str] = {}  # the batch's last news per subject
                for window, row in _by_time(evw, evw.fresh(events), auw, auw.fresh(changes)):
                    window.sent(row["id"])
                    kind, message = (
                        execution_message(row) if window is evw else workflow_message(row)
                    )
                    if not caller.can(NEEDS[kind]):
                        continue
                    news = message.model_dump_json(exclude={"at"})
                    subject = (kind, row.get("execution_id") or row.get("target") or "")
                    if last.get(subject) == news:
                        continue  # the same news again (a step started, then its job)
                    last[subject] = news
                    body = message.model_dump_json()
                    yield f"id: {evw.top}-{auw.top}\nevent: {kind}\ndata: {body}\n\n"
                if len(events) >= BATCH or len(changes) >= BATCH:
                    evw.floor, auw.floor = evw.top, auw.top  # far behind: no lookback
                    continue
                # The server is stopping (it waits for every open request): the client's
                # EventSource reconnects, from its Last-Event-ID, to whichever server answers.
                if host.bus.stopping or await request.is_disconnected():
                    return
                if not await sub.wait(keepalive):
                    try:
                        caller = await asyncio.to_thread(identify, services, authorization, cookie)
                    except Unauthorized as exc:
                        yield sse(f"{evw.top}-{auw.top}", "end", {"reason": exc.message})
                        return
                    yield ": keep-alive\n\n"

    return StreamingResponse(
        gen(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
