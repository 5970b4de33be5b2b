"""What arrived on ``POST /hooks/{key}`` and what came of it, and the per-key rate counters.

A delivery is recorded per outcome: an HTTP request that carried three alerts leaves three
rows sharing one ``request_id`` (one started, one deduplicated, one filtered out, say), a
refused request leaves one. Rows name their trigger by workflow and trigger name (the trigger's
identity, which survives re-publishing), and are pruned after `KEEP_DAYS`.

The rate counters are one row per (hook key, minute, kind) incremented by an upsert, so every
replica on one database counts against the same limit without a lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsflow.store.base import Base
from opsflow.store.tables import BigIntKey

KEEP_DAYS = 7


class DeliveryOutcome(StrEnum):
    """What came of one delivery (or of one item of it)."""

    STARTED = "started"
    DEDUPLICATED = "deduplicated"
    FILTERED = "filtered"  # read and understood, but the trigger's filters start nothing
    REFUSED = "refused"  # not accepted: not authenticated, too large, malformed, paused...


class TriggerDelivery(Base):
    __tablename__ = "trigger_deliveries"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(40))
    workflow_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("workflows.id", ondelete="CASCADE")
    )
    trigger_name: Mapped[str] = mapped_column(String(100))
    trigger_type: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime]
    source_address: Mapped[str] = mapped_column(String(64), default="")
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text, default="")
    delivery_key: Mapped[str | None] = mapped_column(String(200))
    execution_id: Mapped[str | None] = mapped_column(String(40))

    __table_args__ = (
        Index("ix_trigger_deliveries_trigger", "workflow_id", "trigger_name", "id"),
        Index("ix_trigger_deliveries_received_at", "received_at"),
    )


class HookDeliveryKey(Base):
    """A delivery's idempotency key (``Idempotency-Key``, ``webhook-id``, a provider's delivery
    id) per trigger, and the execution it started: the unique key is what makes 50 concurrent
    repeats start one run, on any number of replicas. Pruned after `KEEP_DAYS`."""

    __tablename__ = "hook_delivery_keys"

    trigger_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("triggers.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    execution_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(index=True)


class HookRateWindow(Base):
    __tablename__ = "hook_rate_windows"

    hook_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    window: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # Unix minute
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


@dataclass(frozen=True)
class Delivery:
    """One recorded delivery (or item of one), as the API shows it."""

    id: int
    request_id: str
    workflow_id: str
    trigger_name: str
    trigger_type: str
    received_at: datetime
    source_address: str
    outcome: DeliveryOutcome
    status_code: int
    reason: str
    delivery_key: str | None
    execution_id: str | None

    @classmethod
    def from_row(cls, row: TriggerDelivery) -> Delivery:
        return cls(
            id=row.id,
            request_id=row.request_id,
            workflow_id=row.workflow_id,
            trigger_name=row.trigger_name,
            trigger_type=row.trigger_type,
            received_at=row.received_at,
            source_address=row.source_address,
            outcome=DeliveryOutcome(row.outcome),
            status_code=row.status_code,
            reason=row.reason,
            delivery_key=row.delivery_key,
            execution_id=row.execution_id,
        )


@dataclass(frozen=True)
class NewDelivery:
    """A delivery to record (the store numbers it)."""

    request_id: str
    workflow_id: str
    trigger_name: str
    trigger_type: str
    received_at: datetime
    source_address: str
    outcome: DeliveryOutcome
    status_code: int
    reason: str = ""
    delivery_key: str | None = None
    execution_id: str | None = None


def _values(d: NewDelivery) -> dict[str, object]:
    return {
        "request_id": d.request_id,
        "workflow_id": d.workflow_id,
        "trigger_name": d.trigger_name,
        "trigger_type": d.trigger_type,
        "received_at": d.received_at,
        "source_address": d.source_address[:64],
        "outcome": d.outcome.value,
        "status_code": d.status_code,
        "reason": d.reason,
        "delivery_key": d.delivery_key,
        "execution_id": d.execution_id,
    }


def record(session: Session, deliveries: list[NewDelivery]) -> None:
    """Record ``deliveries`` (the items of one request, usually one)."""
    session.execute(insert(TriggerDelivery), [_values(d) for d in deliveries])


def list_deliveries(
    session: Session,
    workflow_id: str,
    trigger_name: str | None = None,
    *,
    limit: int = 50,
    before_id: int | None = None,
) -> list[Delivery]:
    """A workflow's deliveries (one trigger's when named), newest first."""
    query = select(TriggerDelivery).where(TriggerDelivery.workflow_id == workflow_id)
    if trigger_name is not None:
        query = query.where(TriggerDelivery.trigger_name == trigger_name)
    if before_id is not None:
        query = query.where(TriggerDelivery.id < before_id)
    query = query.order_by(TriggerDelivery.id.desc()).limit(limit)
    return [Delivery.from_row(row) for row in session.scalars(query)]


def last_deliveries(
    session: Session, workflow_id: str, per_trigger: int
) -> dict[str, list[Delivery]]:
    """The ``per_trigger`` newest deliveries of each of a workflow's triggers, by name."""
    rank = (
        func.row_number()
        .over(partition_by=TriggerDelivery.trigger_name, order_by=TriggerDelivery.id.desc())
        .label("rank")
    )
    ranked = (
        select(TriggerDelivery.id, rank)
        .where(TriggerDelivery.workflow_id == workflow_id)
        .subquery()
    )
    query = (
        select(TriggerDelivery)
        .join(ranked, ranked.c.id == TriggerDelivery.id)
        .where(ranked.c.rank <= per_trigger)
        .order_by(TriggerDelivery.id.desc())
    )
    out: dict[str, list[Delivery]] = {}
    for row in session.scalars(query):
        out.setdefault(row.trigger_name, []).append(Delivery.from_row(row))
    return out


def claim_key(
    session: Session, trigger_id: int, key: str, execution_id: str, now: datetime
) -> str | None:
    """Insert-or-nothing the trigger's delivery ``key`` for ``execution_id``: None when this
    transaction now owns it, else the execution an earlier delivery with that key started.

    On PostgreSQL a concurrent claim of the same key waits for the first one's commit (the
    unique index), then finds its row; no lock outlives a transaction."""
    dialect = session.get_bind().dialect.name
    dialect_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # RETURNING, not rowcount: an ORM-executed INSERT reports no reliable rowcount on
    # psycopg (it said 1 for a conflict that inserted nothing).
    claimed = session.execute(
        dialect_insert(HookDeliveryKey)
        .values(trigger_id=trigger_id, key=key, execution_id=execution_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["trigger_id", "key"])
        .returning(HookDeliveryKey.key)
    ).first()
    if claimed is not None:
        return None
    earlier = session.scalar(
        select(HookDeliveryKey.execution_id).where(
            HookDeliveryKey.trigger_id == trigger_id, HookDeliveryKey.key == key
        )
    )
    return str(earlier) if earlier is not None else None


def claim_key_and_record(
    session: Session, trigger_id: int, key: str, started: NewDelivery, now: datetime
) -> str | None:
    """`claim_key` for ``started.execution_id`` and, when the claim is this transaction's,
    `record` ``started`` too: None then; else the execution an earlier delivery with that key
    started, with nothing recorded (the caller records the repeat).

    On PostgreSQL the two are one statement (the claim in a data-modifying ``WITH``, the
    record inserted only for the row it returns): one round trip on the hot path of every
    accepted delivery. On SQLite, where a round trip costs nothing, two."""
    assert started.execution_id is not None
    if session.get_bind().dialect.name != "postgresql":
        earlier = claim_key(session, trigger_id, key, started.execution_id, now)
        if earlier is None:
            record(session, [started])
        return earlier
    claimed = (
        pg_insert(HookDeliveryKey)
        .values(trigger_id=trigger_id, key=key, execution_id=started.execution_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["trigger_id", "key"])
        .returning(HookDeliveryKey.key)
        .cte("claimed")
    )
    values = _values(started)
    recorded = session.execute(
        insert(TriggerDelivery)
        .from_select(
            list(values),
            select(
                *(literal(v, type_=TriggerDelivery.__table__.c[k].type) for k, v in values.items())
            ).select_from(claimed),
        )
        .returning(TriggerDelivery.id)
    ).first()
    if recorded is not None:
        return None
    earlier = session.scalar(
        select(HookDeliveryKey.execution_id).where(
            HookDeliveryKey.trigger_id == trigger_id, HookDeliveryKey.key == key
        )
    )
    return str(earlier) if earlier is not None else None


def touch_key(session: Session, trigger_id: int, key: str, now: datetime) -> None:
    """Keep the trigger's delivery ``key`` another `KEEP_DAYS` from ``now``: an alert that
    keeps firing for longer than that must still not start a second run."""
    session.execute(
        update(HookDeliveryKey)
        .where(HookDeliveryKey.trigger_id == trigger_id, HookDeliveryKey.key == key)
        .values(created_at=now)
    )


def count_in_window(session: Session, hook_key: str, window: int, kind: str) -> int:
    """Add one to the (key, window, kind) counter and return its new value.

    One ``INSERT ... ON CONFLICT DO UPDATE``: concurrent requests on any replica each get
    their own number, and the row lock of the update is held only until the commit.
    """
    dialect = session.get_bind().dialect.name
    dialect_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        dialect_insert(HookRateWindow)
        .values(hook_key=hook_key, window=window, kind=kind, count=1)
        .on_conflict_do_update(
            index_elements=["hook_key", "window", "kind"],
            set_={"count": HookRateWindow.count + 1},
        )
        .returning(HookRateWindow.count)
    )
    count = session.execute(statement).scalar_one()
    return int(count)


def prune(session: Session, now: datetime, current_window: int) -> int:
    """Delete deliveries and delivery keys older than `KEEP_DAYS`, and rate windows before
    ``current_window``; return how many deliveries went."""
    cutoff = now - timedelta(days=KEEP_DAYS)
    gone = session.execute(delete(TriggerDelivery).where(TriggerDelivery.received_at < cutoff))
    session.execute(delete(HookDeliveryKey).where(HookDeliveryKey.created_at < cutoff))
    session.execute(delete(HookRateWindow).where(HookRateWindow.window < current_window))
    return int(gone.rowcount)  # type: ignore[attr-defined]
