"""Runs and executions: start a run, list and inspect executions, their logs, live events,
and cancel.

Routes stay thin: they authorize, call the runtime or the store, and shape the answer. Times
are ISO 8601 UTC strings (the store keeps epoch seconds).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field, StrictBool
from sqlalchemy.orm import Session

from opsflow.api.execution_models import (
    CancelRequest,
    EngineLogOut,
    ExecutionDetail,
    ExecutionPage,
    ExecutionSummary,
    FanOutOut,
    ItemOut,
    JobOut,
    LogLineOut,
    LogPage,
    ParentStep,
    StepOut,
    iso,
)
from opsflow.api.limits import INT_MAX, StrictPositive
from opsflow.api.problems import error_responses
from opsflow.api.security import ensure, require
from opsflow.api.services import Services, services_of
from opsflow.auth.credentials import Principal
from opsflow.auth.permissions import Permission
from opsflow.engine.items import ITEM_STATUSES
from opsflow.engine.model import CancelMode
from opsflow.engine.topology import shape_of
from opsflow.errors import InvalidInput, NotFound, Problem
from opsflow.runtime import fan_out
from opsflow.runtime.definitions import graph_of
from opsflow.runtime.host import RuntimeHost
from opsflow.runtime.launch import run_request
from opsflow.runtime.waiting import agents_for_queued, pending_reasons
from opsflow.spec.triggers import RunTrigger
from opsflow.status import ExecutionStatus, JobStatus, StepType
from opsflow.store import jobs as jobs_store
from opsflow.store import logs as logs_store
from opsflow.store import runs as runs_store
from opsflow.store.jobs import Job
from opsflow.store.overview import step_counts
from opsflow.store.runs import ExecutionFilter, Step

router = APIRouter(tags=["executions"])


def _parse_time(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        msg = f"{value!r} is not an ISO 8601 date or time, e.g. 2026-11-25T10:00:00Z"
        raise InvalidInput(f"{name}: {msg}", problems=[Problem(f"query.{name}", msg)]) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def host_of(services: Services) -> RuntimeHost:
    host: RuntimeHost = services.extra["runtime"]
    return host


# --------------------------------------------------------------------------- shapes


class RunBody(BaseModel):
    params: dict[str, Any] = Field(
        default_factory=dict, description="Values for the workflow's params."
    )
    params_as_text: StrictBool = Field(
        False, description="Read string values as the declared types (CLI `-p k=v`)."
    )
    test: StrictBool = Field(
        False, description="Run the draft as a test run instead of a published version."
    )
    version: StrictPositive | None = Field(
        None, description="Pin this published version instead of the latest."
    )


class CancelBody(BaseModel):
    mode: Literal["graceful", "force", "cleanup"] = Field(
        "graceful",
        description="graceful: in-flight jobs finish; force: terminate them; cleanup: graceful, "
        "then each step's cleanup action runs (also accepted after the execution ended, to "
        "undo what it applied; needs executions:cleanup).",
    )
    reason: str = ""


def _detail(services: Services, execution_id: str) -> ExecutionDetail:
    host: RuntimeHost | None = services.extra.get("runtime")
    now = time.time()
    agents = host.runtime.roster.residents() if host is not None else []
    with services.db.read() as session:
        ex = runs_store.get_execution(session, execution_id)
        agents = agents_for_queued(session, agents, now, services.settings.lease_seconds)
        steps = runs_store.list_steps(session, execution_id)
        jobs = jobs_store.jobs_of_execution(session, execution_id)
        elog = runs_store.engine_log(session, execution_id)
        queued = agents and any(j.status == JobStatus.PENDING for j in jobs)
        busy = jobs_store.in_flight_by_agent(session) if queued else {}
        counts = step_counts(session, [execution_id])[execution_id]
    reasons = pending_reasons(ex, steps, jobs, agents, busy)
    definitions = {d["id"]: d for d in ex.definition.get("steps", [])}
    by_step: dict[str, list[Job]] = {}
    for job in jobs:
        by_step.setdefault(job.step_id, []).append(job)

    graph = graph_of(ex) if any(s.item_count is not None for s in steps) else None

    def fan_out_of(s: Step) -> tuple[FanOutOut | None, list[ItemOut]]:
        raw = definitions.get(s.step_id, {})
        if raw.get("for_each") is None and raw.get("matrix") is None:
            return None, []
        rows: list[dict[str, Any]] = []
        tally = {status.value: 0 for status in ITEM_STATUSES}
        if graph is not None and s.item_count is not None:
            rows, tally = fan_out.item_rows(
                s,
                shape_of(graph).nodes[s.step_id],
                by_step.get(s.step_id, []),
                now,
                lost_limit=services.settings.agent_lost_limit,
                stopped=ex.cancel_mode is not None,
            )
        fan = FanOutOut(
            kind="matrix" if raw.get("matrix") is not None else "for_each",
            max_parallel=raw.get("max_parallel"),
            fail_fast=bool(raw.get("fail_fast")),
            min_success=raw.get("min_success"),
            total=s.item_count,
            counts=tally,
        )
        items = [
            ItemOut(
                **{
                    **row,
                    "started_at": iso(row["started_at"]),
                    "ended_at": iso(row["ended_at"]),
                    "retry_at": iso(row["retry_at"]),
                }
            )
            for row in rows
        ]
        return fan, items

    def step_out(s: Step) -> StepOut:
        fan, items = fan_out_of(s)
        step_jobs = sorted(by_step.get(s.step_id, []), key=lambda j: j.attempt)
        own = fan_out.item_attempts(step_jobs)  # {} for a plain step's jobs
        return StepOut(
            id=s.step_id,
            type=StepType(s.type),
            status=s.status,
            started_at=iso(s.started_at),
            ended_at=iso(s.ended_at),
            retry_at=iso(s.retry_at),
            outputs=s.outputs,
            error=s.error,
            result=s.gate_result,
            pending_reason=reasons.get(s.step_id),
            jobs=[JobOut.of(j, definitions.get(s.step_id, {}), own.get(j.id)) for j in step_jobs],
            fan_out=fan,
            items=items,
        )

    summary = ExecutionSummary.of(ex, counts)
    return ExecutionDetail(
        **dict(summary),
        params=ex.params,
        outputs=ex.outputs,
        parent=(
            ParentStep(execution_id=ex.parent_execution_id, step=ex.parent_step_id)
            if ex.parent_execution_id and ex.parent_step_id
            else None
        ),
        chain=list(ex.chain),
        trigger_data=ex.trigger,
        cancel=(
            CancelRequest(
                mode=ex.cancel_mode,
                cleanup=ex.cancel_cleanup,
                requested_at=iso(ex.cancel_requested_at),
                reason=ex.cancel_reason,
                by=ex.cancel_by,
            )
            if ex.cancel_mode or ex.cancel_cleanup
            else None
        ),
        steps=[step_out(s) for s in steps],
        engine_log=[
            EngineLogOut(at=iso(e["at"]), step=e["step_id"], message=e["message"]) for e in elog
        ],
    )


# --------------------------------------------------------------------------- routes


@router.post(
    "/workflows/{workflow_id}/runs",
    status_code=201,
    response_model=ExecutionDetail,
    responses=error_responses(409),
)
def start_run(
    workflow_id: str,
    body: RunBody,
    request: Request,
    principal: Principal = Depends(require(Permission.WORKFLOWS_RUN)),
) -> ExecutionDetail:
    """Start a run of the latest published version (or `version`, or the draft with `test`)."""
    services = services_of(request)
    if body.test:
        ensure(principal, Permission.WORKFLOWS_UPDATE)  # a draft is the editors' work in progress
    with services.db.read() as session:
        req = run_request(
            session,
            workflow_id,
            params=body.params,
            params_as_text=body.params_as_text,
            started_by=principal.name,
            test=body.test,
            version=body.version,
        )
    execution_id = host_of(services).runtime.start_execution(req)
    return _detail(services, execution_id)


@router.get("/executions", response_model=ExecutionPage)
def list_executions(
    request: Request,
    workflow: str | None = Query(None, description="Only this workflow's executions."),
    status: list[ExecutionStatus] | None = Query(None, description="One or more statuses."),
    trigger: RunTrigger | None = Query(None, description="How it was started."),
    started_by: str | None = Query(None, description="Who started it (user name)."),
    since: str | None = Query(None, description="Created at or after (ISO 8601)."),
    until: str | None = Query(None, description="Created before (ISO 8601)."),
    id_prefix: str | None = Query(
        None,
        min_length=6,
        description="Only executions whose id starts with this (at least 6 characters): "
        "how a client resolves a short id.",
    ),
    sort: str = Query(
        "-created_at",
        description="created_at, started_at, ended_at, status, workflow_id; '-' for descending.",
    ),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=INT_MAX),
    _p: Principal = Depends(require(Permission.EXECUTIONS_READ)),
) -> ExecutionPage:
    if sort.lstrip("-") not in runs_store.SORTABLE:
        msg = (
            f"unknown column {sort.lstrip('-')!r}; "
            f"use one of {', '.join(sorted(runs_store.SORTABLE))} ('-' first for descending)"
        )
        raise InvalidInput(f"sort: {msg}", problems=[Problem("query.sort", msg)])
    flt = ExecutionFilter(
        workflow_id=workflow,
        status=[s.value for s in status] if status else None,
        trigger_type=trigger.value if trigger else None,
        started_by=started_by,
        since=_parse_time(since, "since"),
        until=_parse_time(until, "until"),
        id_prefix=id_prefix.lower() if id_prefix else None,
    )
    with services_of(request).db.read() as session:
        items, total = runs_store.list_executions(
            session, flt, limit=limit, offset=offset, sort=sort
        )
        counts = step_counts(session, [e.id for e in items])
    return ExecutionPage(
        items=[ExecutionSummary.of(e, counts[e.id]) for e in items],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/executions/{execution_id}", response_model=ExecutionDetail)
def get_execution(
    execution_id: str,
    request: Request,
    _p: Principal = Depends(require(Permission.EXECUTIONS_READ)),
) -> ExecutionDetail:
    return _detail(services_of(request), execution_id)


@router.post(
    "/executions/{execution_id}/cancel",
    response_model=ExecutionDetail,
    responses=error_responses(409),
)
def cancel_execution(
    execution_id: str,
    request: Request,
    body: CancelBody | None = None,
    principal: Principal = Depends(require(Permission.EXECUTIONS_CANCEL)),
) -> ExecutionDetail:
    body = body or CancelBody()
    if body.mode == "cleanup":
        ensure(principal, Permission.EXECUTIONS_CLEANUP)
    services = services_of(request)
    host_of(services).runtime.cancel(
        execution_id, mode=CancelMode(body.mode), by=principal.name, reason=body.reason
    )
    return _detail(services, execution_id)


def _check_item(session: Session, ex: runs_store.Execution, step: str | None, item: int) -> None:
    """``item`` names an item of fanned-out ``step``: `InvalidInput` (422) without a step or
    on a step that does not fan out, `NotFound` (404) past its items, naming their range."""
    if step is None:
        raise InvalidInput("item needs step: give the fanned-out step the item belongs to")
    nodes = shape_of(graph_of(ex)).nodes
    if step not in nodes:
        raise NotFound(f"execution {ex.id} has no step {step!r}")
    if nodes[step].fan_out is None:
        raise InvalidInput(
            f"step {step!r} has no for_each or matrix, so it has no items; leave out item"
        )
    (state,) = runs_store.step_states_of(session, ex.id, [step])
    count = state.item_count
    if count is None:
        raise NotFound(
            f"step {step!r} has no items yet: its list is worked out when it starts "
            f"(it is {state.status.value})"
        )
    if item >= count:
        raise NotFound(
            f"step {step!r} has no item {item}; its items are 0 to {count - 1}"
            if count
            else f"step {step!r} has no items (its list was empty)"
        )


@router.get("/executions/{execution_id}/logs", response_model=LogPage)
def get_logs(
    execution_id: str,
    request: Request,
    step: str | None = Query(None),
    item: int | None = Query(
        None, ge=0, le=INT_MAX, description="Only the lines of this item of a fanned-out step."
    ),
    stream: Literal["stdout", "stderr", "system"] | None = Query(None),
    q: str | None = Query(None, description="Only lines containing this text."),
    after: int = Query(
        0, ge=0, le=INT_MAX, description="Only lines after this id (from `next_after`)."
    ),
    limit: int = Query(1000, ge=1, le=10000),
    _p: Principal = Depends(require(Permission.EXECUTIONS_READ)),
) -> LogPage:
    with services_of(request).db.read() as session:
        ex = runs_store.get_execution(session, execution_id)
        if item is not None:
            _check_item(session, ex, step, item)
        rows = logs_store.query(
            session,
            execution_id,
            step=step,
            item=item,
            stream=stream,
            text=q,
            after_id=after,
            limit=limit,
        )
    items = [LogLineOut.of(r) for r in rows]
    return LogPage(items=items, next_after=items[-1].id if items else after)


@router.get("/executions/{execution_id}/logs/download", response_class=PlainTextResponse)
def download_logs(
    execution_id: str,
    request: Request,
    step: str | None = Query(None),
    item: int | None = Query(
        None, ge=0, le=INT_MAX, description="Only the lines of this item of a fanned-out step."
    ),
    _p: Principal = Depends(require(Permission.EXECUTIONS_READ)),
) -> PlainTextResponse:
    services = services_of(request)
    out: list[str] = []
    after = 0
    with services.db.read() as session:
        runs_store.get_execution(session, execution_id)
        while True:
            rows = logs_store.query(
                session, execution_id, step=step, item=item, after_id=after, limit=5000
            )
            if not rows:
                break
            for r in rows:
                # "system error: exit code 3": a system line's level follows its stream
                said = f"{r['stream']} {r['level']}" if r["level"] else r["stream"]
                where = r["step_id"] if r["item"] is None else f"{r['step_id']}#{r['item']}"
                out.append(f"{iso(r['at'])} [{where}] {said}: {r['text']}")
            after = rows[-1]["id"]
    return PlainTextResponse(
        "\n".join(out) + ("\n" if out else ""),
        headers={"Content-Disposition": f'attachment; filename="{execution_id}.log"'},
    )
