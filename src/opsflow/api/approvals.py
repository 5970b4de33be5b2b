"""People acting on runs: approve or reject a gate, retry or skip a failed step, and the list
of approvals waiting for someone, with the context an approver needs to decide."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, StrictBool, StrictInt

from opsflow.api.execution_models import ExecutionDetail, iso
from opsflow.api.executions import _detail, host_of
from opsflow.api.limits import INT_MAX
from opsflow.api.problems import error_responses
from opsflow.api.security import require
from opsflow.api.services import services_of
from opsflow.auth.credentials import Principal
from opsflow.auth.permissions import Permission
from opsflow.errors import Forbidden, InvalidInput, Problem
from opsflow.runtime.approvals import Responder, check_eligible, upstream_outputs
from opsflow.runtime.definitions import graph_of
from opsflow.store import approvals as approvals_store
from opsflow.store import runs as runs_store
from opsflow.store import users as users_store
from opsflow.store.approvals import Approval

router = APIRouter(tags=["approvals"])

Via = Literal["web", "cli", "api"]


class AnswerBody(BaseModel):
    note: str | None = Field(None, description="Why; shown in the execution log and outputs.")
    via: Via = Field("api", description="Where the answer was given: web, cli or api.")


class RetryBody(BaseModel):
    from_here: StrictBool = Field(
        False,
        description="Also run again every step after this one, approvals included; with it, "
        "a succeeded step may be run again too (e.g. re-plan after a failed apply).",
    )
    item: StrictInt | None = Field(
        None,
        ge=0,
        le=INT_MAX,
        description="Retry only this item (0-based) of a step with for_each or matrix.",
    )


class ItemBody(BaseModel):
    item: StrictInt | None = Field(
        None,
        ge=0,
        le=INT_MAX,
        description="Only this item (0-based) of a step with for_each or matrix; "
        "without it, the step.",
    )


class RetryOut(ExecutionDetail):
    """The execution after the retry, and what the retry reset besides its step."""

    reset: list[str] = Field(
        description="The other steps set back to pending by this retry, in definition order "
        "(with from_here: every step after it; approvals among them are asked again)."
    )


class ResponseOut(BaseModel):
    user: str
    decision: str
    note: str | None
    via: str
    at: str | None


class ApprovalOut(BaseModel):
    id: str
    execution_id: str
    workflow_id: str
    step: str
    round: int
    status: str
    message: str
    approvers: list[str]
    min_approvals: int
    allow_self_approval: bool
    requested_by: str | None
    opened_at: str | None
    timeout_at: str | None
    decided_at: str | None
    decided_by: str | None
    decided_via: str | None
    note: str | None
    responses: list[ResponseOut]
    can_respond: bool = Field(description="Whether the caller may answer it now.")
    why_not: str | None = Field(None, description="Why the caller may not answer, if not.")

    @classmethod
    def of(cls, approval: Approval, who: Responder, may: bool) -> ApprovalOut:
        why: str | None = None
        if not may:
            why = "your role lacks permission approvals:respond"
        elif approval.status != "pending":
            why = f"already {approval.status}"
        elif any(r.user == who.name for r in approval.responses):
            why = "you have already answered"
        else:
            try:
                check_eligible(approval, who)
            except Forbidden as exc:
                why = exc.message
        return cls(
            id=approval.id,
            execution_id=approval.execution_id,
            workflow_id=approval.workflow_id,
            step=approval.step_id,
            round=approval.round,
            status=approval.status,
            message=approval.message,
            approvers=approval.approvers,
            min_approvals=approval.min_approvals,
            allow_self_approval=approval.allow_self_approval,
            requested_by=approval.requested_by,
            opened_at=iso(approval.opened_at),
            timeout_at=iso(approval.timeout_at),
            decided_at=iso(approval.decided_at),
            decided_by=approval.decided_by,
            decided_via=approval.decided_via,
            note=approval.note,
            responses=[
                ResponseOut(user=r.user, decision=r.decision, note=r.note, via=r.via, at=iso(r.at))
                for r in approval.responses
            ],
            can_respond=why is None,
            why_not=why,
        )


class ApprovalPage(BaseModel):
    items: list[ApprovalOut]
    total: int
    limit: int
    offset: int


class ApprovalContext(ApprovalOut):
    """Everything an approver reads before deciding."""

    workflow_name: str | None
    trigger_type: str
    trigger: dict[str, Any]
    params: dict[str, Any]
    upstream: dict[str, Any] = Field(
        description="Outputs of every step the gate depends on (a Terraform plan's text too)."
    )


class AnswerOut(BaseModel):
    approval: ApprovalOut
    decided: bool = Field(description="Whether this answer decided the gate.")
    execution: ExecutionDetail


def _responder(request: Request, principal: Principal) -> Responder:
    with services_of(request).db.read() as session:
        return Responder(principal.name, frozenset(users_store.teams_of(session, principal.name)))


@router.get("/approvals", response_model=ApprovalPage)
def list_approvals(
    request: Request,
    status: Literal["pending", "approved", "rejected"] | None = Query("pending"),
    workflow: str | None = Query(None),
    execution: str | None = Query(None),
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0, le=INT_MAX),
    principal: Principal = Depends(require(Permission.EXECUTIONS_READ)),
) -> ApprovalPage:
    """Approvals across all workflows (pending ones by default), each saying whether the
    caller may answer it."""
    who = _responder(request, principal)
    with services_of(request).db.read() as session:
        items, total = approvals_store.list_approvals(
            session,
            status=status,
            workflow_id=workflow,
            execution_id=execution,
            limit=limit,
            offset=offset,
        )
    may = principal.can(Permission.APPROVALS_RESPOND)
    return ApprovalPage(
        items=[ApprovalOut.of(a, who, may) for a in items], total=total, limit=limit, offset=offset
    )


@router.get("/executions/{execution_id}/approvals/{step_id}", response_model=ApprovalContext)
def approval_context(
    execution_id: str,
    step_id: str,
    request: Request,
    principal: Principal = Depends(require(Permission.EXECUTIONS_READ)),
) -> ApprovalContext:
    """The gate, who started the run, its params and trigger, and the upstream outputs."""
    who = _responder(request, principal)
    with services_of(request).db.read() as session:
        ex = runs_store.get_execution(session, execution_id)
        approval = approvals_store.current(session, execution_id, step_id)
        steps = {s.step_id: s for s in runs_store.list_steps(session, execution_id)}
    base = ApprovalOut.of(approval, who, principal.can(Permission.APPROVALS_RESPOND))
    return ApprovalContext(
        **base.model_dump(),
        workflow_name=ex.definition.get("name"),
        trigger_type=ex.trigger_type,
        trigger=ex.trigger,
        params=ex.params,
        upstream=upstream_outputs(graph_of(ex), steps, step_id),
    )


def _answer(
    request: Request,
    principal: Principal,
    execution_id: str,
    step_id: str,
    body: AnswerBody,
    approve: bool,
) -> AnswerOut:
    services = services_of(request)
    approval, decided = host_of(services).runtime.respond(
        execution_id, step_id, user=principal.name, approve=approve, note=body.note, via=body.via
    )
    who = _responder(request, principal)
    return AnswerOut(
        approval=ApprovalOut.of(approval, who, True),
        decided=decided,
        execution=_detail(services, execution_id),
    )


@router.post(
    "/executions/{execution_id}/steps/{step_id}/approve",
    response_model=AnswerOut,
    responses=error_responses(409),
)
def approve(
    execution_id: str,
    step_id: str,
    request: Request,
    body: AnswerBody | None = None,
    principal: Principal = Depends(require(Permission.APPROVALS_RESPOND)),
) -> AnswerOut:
    """Approve a waiting gate (403 with the reason if you may not; 409 if already decided)."""
    return _answer(request, principal, execution_id, step_id, body or AnswerBody(), True)


@router.post(
    "/executions/{execution_id}/steps/{step_id}/reject",
    response_model=AnswerOut,
    responses=error_responses(409),
)
def reject(
    execution_id: str,
    step_id: str,
    request: Request,
    body: AnswerBody | None = None,
    principal: Principal = Depends(require(Permission.APPROVALS_RESPOND)),
) -> AnswerOut:
    """Reject a waiting gate: the run follows the gate's rejected edges."""
    return _answer(request, principal, execution_id, step_id, body or AnswerBody(), False)


@router.post(
    "/executions/{execution_id}/steps/{step_id}/retry",
    response_model=RetryOut,
    responses=error_responses(409),
)
def retry(
    execution_id: str,
    step_id: str,
    request: Request,
    body: RetryBody | None = None,
    principal: Principal = Depends(require(Permission.EXECUTIONS_RETRY)),
) -> RetryOut:
    """Run a failed step again as a new attempt (``from_here``: and every step after it,
    approvals included; a succeeded step only from here). 409 says why a retry is refused,
    e.g. an apply whose saved plan is stale, and what to do instead."""
    services = services_of(request)
    body = body or RetryBody()
    runtime = host_of(services).runtime
    if body.item is not None:
        if body.from_here:
            msg = "from_here applies to a step, not to one item; leave one of them out"
            raise InvalidInput(f"item: {msg}", problems=[Problem("body.item", msg)])
        runtime.retry_item(execution_id, step_id, body.item, by=principal.name)
        reset: list[str] = []
    else:
        reset = runtime.retry_step(
            execution_id, step_id, by=principal.name, from_here=body.from_here
        )
    return RetryOut(**_detail(services, execution_id).model_dump(), reset=reset)


@router.post(
    "/executions/{execution_id}/steps/{step_id}/skip",
    response_model=ExecutionDetail,
    responses=error_responses(409),
)
def skip(
    execution_id: str,
    step_id: str,
    request: Request,
    body: ItemBody | None = None,
    principal: Principal = Depends(require(Permission.EXECUTIONS_RETRY)),
) -> ExecutionDetail:
    """Mark a failed step (or one failed or cancelled ``item`` of it) skipped, only where
    the workflow sets ``allow_skip``; a skipped item counts as succeeded."""
    services = services_of(request)
    item = (body or ItemBody()).item
    if item is not None:
        host_of(services).runtime.skip_item(execution_id, step_id, item, by=principal.name)
    else:
        host_of(services).runtime.skip_step(execution_id, step_id, by=principal.name)
    return _detail(services, execution_id)


@router.post(
    "/executions/{execution_id}/steps/{step_id}/cancel",
    response_model=ExecutionDetail,
    responses=error_responses(409),
)
def cancel_step(
    execution_id: str,
    step_id: str,
    request: Request,
    body: ItemBody | None = None,
    principal: Principal = Depends(require(Permission.EXECUTIONS_CANCEL)),
) -> ExecutionDetail:
    """Cancel one ``item`` (or every item not ended) of a running step with for_each or
    matrix: their jobs are stopped and they end cancelled (not a success)."""
    services = services_of(request)
    item = (body or ItemBody()).item
    host_of(services).runtime.cancel_items(execution_id, step_id, item, by=principal.name)
    return _detail(services, execution_id)
