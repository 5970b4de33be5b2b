"""Approval gates: opening one when the engine reaches it, people's answers, and closing it.

Every change happens under the execution's row lock, and closing is a compare-and-set on the
gate still being pending, so an answer and the gate's timeout cannot both win: whichever takes
the lock first decides, and the other is told what happened. A person answers a gate once;
a rejection decides at once, approvals decide when ``min_approvals`` of them are in.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from opsflow.engine import model as m
from opsflow.errors import Conflict, GateRefused, InvalidInput, TemplateError
from opsflow.runtime import events
from opsflow.runtime.changes import Changes
from opsflow.runtime.context import (
    ServerFacts,
    execution_page,
    step_definition,
    template_context,
)
from opsflow.spec.notifications import default_channel
from opsflow.spec.template import render
from opsflow.status import ApprovalStatus, Outcome, StepStatus, StepType
from opsflow.store import approvals as approvals_store
from opsflow.store import runs as runs_store
from opsflow.store.approvals import Approval, Response
from opsflow.store.runs import Execution, Step
from opsflow.words import counted

VIAS = ("web", "cli", "api")


class RunView(Protocol):
    """What the gate functions need from a reconcile in progress."""

    session: Session
    ex: Execution
    now: float
    graph: m.Graph
    steps: dict[str, Step]
    changes: Changes

    def set_step(self, step_id: str, **values: Any) -> None: ...
    def server_facts(self) -> ServerFacts: ...
    def full_steps(self) -> dict[str, Step]: ...
    def event(self, event: events.Event) -> None: ...
    def engine_log(self, message: str, step: str | None = None) -> None: ...


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _who(approvers: Sequence[str]) -> str:
    return ", ".join(approvers) if approvers else "anyone allowed to respond to approvals"


def open_gate(run: RunView, step_id: str) -> str:
    """Record a new round of the gate (message rendered now) and queue the approvers' notice."""
    raw = step_definition(run.ex, step_id)
    node = run.graph.step(step_id)
    source = str(raw.get("message") or f"Approve step {step_id} of {run.ex.workflow_id}?")
    facts = run.server_facts()
    try:
        context = template_context(
            run.ex, run.full_steps(), facts, secrets_for="an approval message"
        )
        message = render(source, context, where="message")
    except TemplateError as exc:
        message = f"{source}\n(the message could not be rendered: {exc.message})"
        run.engine_log(f"approval {step_id}: {exc.message}", step_id)
    approvers = [str(a) for a in raw.get("approvers") or []]
    minimum = int(raw.get("min_approvals") or 1)
    approval_id = uuid.uuid4().hex
    timeout_at = run.now + node.timeout if node.timeout else None
    approvals_store.open_approval(
        run.session,
        {
            "id": approval_id,
            "execution_id": run.ex.id,
            "step_id": step_id,
            "message": message,
            "approvers": approvers,
            "min_approvals": minimum,
            "allow_self_approval": bool(raw.get("allow_self_approval", True)),
            "requested_by": run.ex.started_by,
            "opened_at": run.now,
            "timeout_at": timeout_at,
        },
    )
    deadline = f", until {iso(timeout_at)}" if timeout_at else ", with no time limit"
    run.engine_log(
        f"approval {step_id} is waiting for {counted(minimum, 'approval')} from {_who(approvers)}"
        f"{deadline}",
        step_id,
    )
    channel = default_channel(run.ex.definition)
    if channel:
        page = execution_page(facts.public_url, run.ex.id)
        approvals_store.enqueue_notification(
            run.session,
            channel=str(channel),
            title=f"Approval needed: {run.ex.workflow_id} / {step_id}",
            message=(
                f"{message}\n\nExecution {run.ex.id} of {run.ex.workflow_id}, started by "
                f"{run.ex.started_by or 'a trigger'}. Approvers: {_who(approvers)}.\n"
                f"Answer on {page} or with: opsflow approve {run.ex.id} {step_id} "
                f"--note '...' (or opsflow reject)"
            ),
            now=run.now,
            execution_id=run.ex.id,
        )
        run.changes.notifications = True
    return approval_id


def close_gate(run: RunView, step_id: str, status: StepStatus, reason: str) -> None:
    """The engine settled the gate: record who or what decided, as the step's outputs."""
    approval = approvals_store.find_current(run.session, run.ex.id, step_id)
    if approval is None:
        return
    if approval.status == ApprovalStatus.PENDING:
        # Nobody answered: the engine decided (a timeout, or the run was cancelled).
        via = "cancel" if run.ex.cancel_mode else "timeout"
        approvals_store.decide(
            run.session,
            approval.id,
            status=ApprovalStatus.APPROVED
            if status == StepStatus.APPROVED
            else ApprovalStatus.REJECTED,
            at=run.now,
            by=None,
            via=via,
            note=reason or via,
        )
        run.engine_log(f"approval {step_id} rejected via {via}: {reason or via}", step_id)
        approval = approvals_store.current(run.session, run.ex.id, step_id)
    run.set_step(step_id, outputs=gate_outputs(approval))
    decided = ApprovalStatus(approval.status)
    run.event(events.ApprovalDecided(step_id, decided, approval.decided_via))


def gate_outputs(approval: Approval) -> dict[str, Any]:
    return {
        "approved": approval.status == ApprovalStatus.APPROVED,
        "responded_by": approval.decided_by,
        "response_note": approval.note,
        "responded_via": approval.decided_via,
        "responded_at": iso(approval.decided_at),
        "approvals": approval.approved_by,
    }


@dataclass(frozen=True)
class Responder:
    """Who answers, as far as gates care: a name and the teams they belong to."""

    name: str
    teams: frozenset[str]


def check_eligible(approval: Approval, who: Responder) -> None:
    """`GateRefused` (403) with the reason and the way on when this person may not answer this
    gate. Being an approver is a matter of user name or team membership, never of role."""
    if approval.approvers:
        allowed = who.name in approval.approvers or any(
            a.startswith("team:") and a[5:] in who.teams for a in approval.approvers
        )
        if not allowed:
            raise GateRefused(_not_an_approver(approval.approvers, who.name))
    if not approval.allow_self_approval and who.name == approval.requested_by:
        raise GateRefused(
            f"{who.name} started this run and the gate does not allow self-approval; "
            "someone else must answer"
        )


def _not_an_approver(approvers: list[str], user: str) -> str:
    teams = [a[5:] for a in approvers if a.startswith("team:")]
    people = [a for a in approvers if not a.startswith("team:")]
    named = []
    if people:
        named.append(f"{'user' if len(people) == 1 else 'users'} {', '.join(people)}")
    if teams:
        named.append(f"{'team' if len(teams) == 1 else 'teams'} {', '.join(teams)}")
    message = f"{user} is not among this gate's approvers ({'; '.join(named)})"
    if teams:
        return (
            f"{message}: a role does not make an approver, team membership does; "
            f"an admin can add you with `opsflow teams add-member {teams[0]} {user}` "
            f"(or, if there is no such team yet, `opsflow teams create {teams[0]} -m {user}`)"
        )
    return f"{message}: only they can answer it; a role does not make an approver"


def respond(
    session: Session,
    execution_id: str,
    step_id: str,
    who: Responder,
    *,
    approve: bool,
    note: str | None,
    via: str,
    now: float,
    reconcile: Callable[[], None],
) -> tuple[Approval, bool]:
    """Record one person's answer; returns the gate and whether this answer decided it.

    The caller holds the execution's row lock (through ``runs_store.lock_execution``).
    """
    if via not in VIAS:
        raise InvalidInput(f"via: {via!r} is not one of {', '.join(VIAS)}")
    runs_store.lock_execution(session, execution_id)
    approval = approvals_store.current(session, execution_id, step_id)
    if (
        approval.status == ApprovalStatus.PENDING
        and approval.timeout_at is not None
        and now >= approval.timeout_at
    ):
        reconcile()  # the deadline passed before this answer: let the timeout decide first
        approval = approvals_store.current(session, execution_id, step_id)
    if approval.status != ApprovalStatus.PENDING:
        by = f" by {approval.decided_by}" if approval.decided_by else ""
        raise Conflict(
            f"approval {step_id} was already {approval.status}{by} via {approval.decided_via} "
            f"at {iso(approval.decided_at)}"
            + (f": {approval.note}" if approval.note and not approval.decided_by else "")
        )
    steps = {s.step_id: s for s in runs_store.list_steps(session, execution_id)}
    step = steps.get(step_id)
    if step is None or step.type != StepType.APPROVAL.value or step.status != StepStatus.WAITING:
        raise Conflict(f"step {step_id} is not waiting for a decision")
    check_eligible(approval, who)
    if any(r.user == who.name for r in approval.responses):
        raise Conflict(f"{who.name} has already answered approval {step_id}; nobody counts twice")
    approvals_store.add_response(
        session,
        approval.id,
        Response(who.name, "approve" if approve else "reject", note, via, now),
    )
    approval = approvals_store.current(session, execution_id, step_id)
    approvals_needed = approval.min_approvals - len(approval.approved_by)
    if approve and approvals_needed > 0:
        runs_store.add_engine_log(
            session,
            [
                {
                    "execution_id": execution_id,
                    "step_id": step_id,
                    "at": now,
                    "message": f"approval {step_id}: {who.name} approved via {via}; "
                    f"{counted(approvals_needed, 'more approval')} needed",
                }
            ],
        )
        events.write_one(
            session,
            execution_id,
            now,
            events.ApprovalAnswered(step_id, who.name, approvals_needed),
        )
        return approval, False
    status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
    approvals_store.decide(
        session, approval.id, status=status, at=now, by=who.name, via=via, note=note
    )
    verb = "approved" if approve else "rejected"
    runs_store.cas_step_status(
        session,
        execution_id,
        step_id,
        StepStatus.WAITING,
        gate_result=(Outcome.APPROVED if approve else Outcome.REJECTED).value,
        gate_reason=f"{verb} by {who.name} via {via}" + (f": {note}" if note else ""),
    )
    runs_store.add_engine_log(
        session,
        [
            {
                "execution_id": execution_id,
                "step_id": step_id,
                "at": now,
                "message": f"approval {step_id} {verb} by {who.name} via {via}"
                + (f" with note: {note}" if note else ""),
            }
        ],
    )
    reconcile()
    return approvals_store.current(session, execution_id, step_id), True


def upstream_outputs(graph: m.Graph, steps: Mapping[str, Step], step_id: str) -> dict[str, Any]:
    """The outputs of every step the gate depends on, directly or not: what the approver reads
    (a Terraform plan's text among them)."""
    by_id = {node.id: node for node in graph.steps}
    seen: set[str] = set()
    stack = [e.step for e in by_id[step_id].needs]
    while stack:
        sid = stack.pop()
        if sid in seen or sid not in by_id:
            continue
        seen.add(sid)
        stack.extend(e.step for e in by_id[sid].needs)
    return {
        sid: {"status": steps[sid].status.value, "output": steps[sid].outputs}
        for sid in sorted(seen, key=lambda s: steps[s].position)
        if sid in steps
    }
