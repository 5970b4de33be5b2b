"""Approval gates, the answers people gave them, and the notification outbox.

An approval row is one opening of a gate (``round`` counts re-openings after a retry from an
upstream step). Each person answers a round at most once (a unique key), so nobody counts
twice. Notifications are written in the same transaction as the state change that calls for
them and sent afterwards by the runtime, so a crash between the two loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsflow.errors import NotFound
from opsflow.status import ApprovalStatus
from opsflow.store.base import Base, JSONType
from opsflow.store.runs import EX, BigId
from opsflow.words import did_you_mean


class ApprovalRow(Base):
    __tablename__ = "approvals"
    __table_args__ = (
        UniqueConstraint("execution_id", "step_id", "round"),
        Index("ix_approvals_status", "status", "opened_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(String(100))
    round: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # pending | approved | rejected
    message: Mapped[str] = mapped_column(Text, default="")
    approvers: Mapped[list[str]] = mapped_column(JSONType, default=list)
    min_approvals: Mapped[int] = mapped_column(Integer, default=1)
    allow_self_approval: Mapped[bool] = mapped_column(Boolean, default=True)
    requested_by: Mapped[str | None] = mapped_column(String(100))
    opened_at: Mapped[float] = mapped_column(Float)
    timeout_at: Mapped[float | None] = mapped_column(Float)
    decided_at: Mapped[float | None] = mapped_column(Float)
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_via: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)


class ApprovalResponseRow(Base):
    __tablename__ = "approval_responses"
    __table_args__ = (UniqueConstraint("approval_id", "user"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    approval_id: Mapped[str] = mapped_column(ForeignKey("approvals.id", ondelete="CASCADE"))
    user: Mapped[str] = mapped_column(String(100))
    decision: Mapped[str] = mapped_column(String(16))  # approve | reject
    note: Mapped[str | None] = mapped_column(Text)
    via: Mapped[str] = mapped_column(String(16))
    at: Mapped[float] = mapped_column(Float)


class NotificationRow(Base):
    """The outbox: a message to send through a named channel, durably."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_due", "sent_at", "due_at"),
        Index("ux_notifications_key", "key", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    execution_id: Mapped[str | None] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(Text, default="")
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    due_at: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    # At most one row per key (NULL: unkeyed, such as an approval request).
    key: Mapped[str | None] = mapped_column(String(200))


AP: Table = cast(Table, ApprovalRow.__table__)
AR: Table = cast(Table, ApprovalResponseRow.__table__)
NT: Table = cast(Table, NotificationRow.__table__)


@dataclass(frozen=True)
class Response:
    user: str
    decision: str
    note: str | None
    via: str
    at: float


@dataclass(frozen=True)
class Approval:
    id: str
    execution_id: str
    step_id: str
    round: int
    status: str
    message: str
    approvers: list[str]
    min_approvals: int
    allow_self_approval: bool
    requested_by: str | None
    opened_at: float
    timeout_at: float | None
    decided_at: float | None
    decided_by: str | None
    decided_via: str | None
    note: str | None
    workflow_id: str
    responses: list[Response] = field(default_factory=list)

    @property
    def approved_by(self) -> list[str]:
        return [r.user for r in self.responses if r.decision == "approve"]


def _approval(row: Any, responses: list[Response], workflow_id: str) -> Approval:
    m = row._mapping
    return Approval(
        id=m["id"],
        execution_id=m["execution_id"],
        step_id=m["step_id"],
        round=m["round"],
        status=m["status"],
        message=m["message"] or "",
        approvers=list(m["approvers"] or []),
        min_approvals=m["min_approvals"],
        allow_self_approval=bool(m["allow_self_approval"]),
        requested_by=m["requested_by"],
        opened_at=m["opened_at"],
        timeout_at=m["timeout_at"],
        decided_at=m["decided_at"],
        decided_by=m["decided_by"],
        decided_via=m["decided_via"],
        note=m["note"],
        responses=responses,
        workflow_id=workflow_id,
    )


def _responses(session: Session, approval_ids: list[str]) -> dict[str, list[Response]]:
    out: dict[str, list[Response]] = {a: [] for a in approval_ids}
    if not approval_ids:
        return out
    rows = session.connection().execute(
        select(AR).where(AR.c.approval_id.in_(approval_ids)).order_by(AR.c.id)
    )
    for r in rows:
        out[r.approval_id].append(Response(r.user, r.decision, r.note, r.via, r.at))
    return out


def open_approval(session: Session, values: dict[str, Any]) -> int:
    """Insert the next round of the step's gate; returns the round number."""
    current = (
        session.connection()
        .execute(
            select(func.max(AP.c.round)).where(
                AP.c.execution_id == values["execution_id"], AP.c.step_id == values["step_id"]
            )
        )
        .scalar()
    )
    round_ = int(current or 0) + 1
    session.connection().execute(
        insert(AP).values(**values, round=round_, status=ApprovalStatus.PENDING.value)
    )
    return round_


def current(session: Session, execution_id: str, step_id: str) -> Approval:
    """The newest round of the step's gate, with its workflow's id; NotFound without one."""
    row = (
        session.connection()
        .execute(
            select(AP, EX.c.workflow_id)
            .join(EX, EX.c.id == AP.c.execution_id)
            .where(AP.c.execution_id == execution_id, AP.c.step_id == step_id)
            .order_by(AP.c.round.desc())
            .limit(1)
        )
        .first()
    )
    if row is None:
        gates = session.connection().execute(
            select(AP.c.step_id).where(AP.c.execution_id == execution_id).distinct()
        )
        raise NotFound(
            f"step {step_id!r} of execution {execution_id} has no approval gate"
            + did_you_mean(step_id, [str(gate) for (gate,) in gates])
        )
    return _approval(row, _responses(session, [row.id])[row.id], row.workflow_id)


def find_current(session: Session, execution_id: str, step_id: str) -> Approval | None:
    try:
        return current(session, execution_id, step_id)
    except NotFound:
        return None


def add_response(session: Session, approval_id: str, response: Response) -> None:
    session.connection().execute(
        insert(AR).values(
            approval_id=approval_id,
            user=response.user,
            decision=response.decision,
            note=response.note,
            via=response.via,
            at=response.at,
        )
    )


def decide(
    session: Session,
    approval_id: str,
    *,
    status: ApprovalStatus,
    at: float,
    by: str | None,
    via: str,
    note: str | None,
) -> bool:
    """Close a pending approval (compare-and-set on ``pending``)."""
    res = session.connection().execute(
        update(AP)
        .where(AP.c.id == approval_id, AP.c.status == ApprovalStatus.PENDING.value)
        .values(status=status.value, decided_at=at, decided_by=by, decided_via=via, note=note)
    )
    return bool(res.rowcount)


def list_approvals(
    session: Session,
    *,
    status: str | None = None,
    workflow_id: str | None = None,
    execution_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Approval], int]:
    conds: list[Any] = [EX.c.id == AP.c.execution_id]
    if status:
        conds.append(AP.c.status == status)
    if workflow_id:
        conds.append(EX.c.workflow_id == workflow_id)
    if execution_id:
        conds.append(AP.c.execution_id == execution_id)
    conn = session.connection()
    total = conn.execute(
        select(func.count()).select_from(AP).join(EX, conds[0]).where(*conds[1:])
    ).scalar()
    rows = conn.execute(
        select(AP, EX.c.workflow_id)
        .join(EX, conds[0])
        .where(*conds[1:])
        .order_by(AP.c.opened_at.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    responses = _responses(session, [r.id for r in rows])
    return [_approval(r, responses[r.id], r.workflow_id) for r in rows], int(total or 0)


# --------------------------------------------------------------------------- outbox


@dataclass(frozen=True)
class Notification:
    id: int
    execution_id: str | None
    channel: str
    title: str
    message: str
    attempts: int
    sent_at: float | None = None
    error: str | None = None
    key: str | None = None


def enqueue_notification(
    session: Session,
    *,
    channel: str,
    title: str,
    message: str,
    now: float,
    execution_id: str | None,
    key: str | None = None,
) -> bool:
    """Queue a message; with a ``key``, only when no row has that key yet (the caller holds
    the lock that serializes writers of the key, such as the execution's row lock; the unique
    index backs it). Returns whether a row was added."""
    if (
        key is not None
        and session.connection().execute(select(NT.c.id).where(NT.c.key == key)).first()
    ):
        return False
    session.connection().execute(
        insert(NT).values(
            key=key,
            execution_id=execution_id,
            channel=channel,
            title=title,
            message=message,
            created_at=now,
            due_at=now,
            attempts=0,
        )
    )
    return True


def _notification(r: Any) -> Notification:
    """An outbox row as the store returns it."""
    return Notification(
        r.id, r.execution_id, r.channel, r.title, r.message, r.attempts, r.sent_at, r.error, r.key
    )


def due_notifications(session: Session, now: float, limit: int = 20) -> list[Notification]:
    rows = session.connection().execute(
        select(NT)
        .where(NT.c.sent_at.is_(None), NT.c.due_at <= now)
        .order_by(NT.c.due_at)
        .limit(limit)
    )
    return [_notification(r) for r in rows]


def notifications_of(session: Session, execution_id: str) -> list[Notification]:
    """Every outbox row of one execution, oldest first, with whether it was sent and the
    last error."""
    rows = session.connection().execute(
        select(NT).where(NT.c.execution_id == execution_id).order_by(NT.c.id)
    )
    return [_notification(r) for r in rows]


def claim_notification(session: Session, notification_id: int, now: float, retry_at: float) -> bool:
    """Take a notification for sending: push its due time out so no one else sends it too;
    if we die while sending, it comes due again at ``retry_at``."""
    res = session.connection().execute(
        update(NT)
        .where(NT.c.id == notification_id, NT.c.sent_at.is_(None), NT.c.due_at <= now)
        .values(due_at=retry_at, attempts=NT.c.attempts + 1)
    )
    return bool(res.rowcount)


def finish_notification(
    session: Session, notification_id: int, *, sent_at: float | None, error: str | None
) -> None:
    session.connection().execute(
        update(NT).where(NT.c.id == notification_id).values(sent_at=sent_at, error=error)
    )
