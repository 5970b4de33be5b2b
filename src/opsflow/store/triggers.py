"""The ``triggers`` table (one row per trigger a published workflow declares) and
``trigger_fires`` (one row per schedule instant that started a run).

A trigger's row outlives the versions that declare it: its identity is (workflow, ``name``),
so the URL key, the generated secret and the fire state a row holds survive re-publishing.
A trigger the latest version no longer declares is *retired* (``retired_at``), never deleted,
and comes back with its key and secret if a later version declares it again.

Times the scheduler compares (``next_due_at``, fire instants) are float epoch seconds, like
the runtime's timers; the row's own bookkeeping times are aware UTC datetimes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsflow.errors import NotFound
from opsflow.store.base import Base, JSONType, UTCDateTime, utcnow
from opsflow.store.tables import Workflow as WorkflowRow
from opsflow.store.workflows import Workflow


class TriggerRow(Base):
    __tablename__ = "triggers"
    __table_args__ = (UniqueConstraint("workflow_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workflow_id: Mapped[str] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    # The trigger's identity within its workflow: its YAML ``key``, else ``<type>-<n>``.
    name: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(16))
    # The URL key of webhook, git and incident triggers (``POST /hooks/{key}``).
    hook_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    # A generated secret, encrypted by the server's SecretBox under `secret_box_name`; or
    # the name of an opsflow secret the YAML names (``secret: NAME``).
    secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    secret_name: Mapped[str | None] = mapped_column(String(128))
    # The trigger as the latest version declares it (canonical form).
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Per-type bookkeeping: a schedule's last instant and result, a poll's seen commits.
    state: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # When the scheduler should look at this trigger next (schedules, git polls); epoch s.
    next_due_at: Mapped[float | None] = mapped_column(Float, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TriggerFireRow(Base):
    """One scheduled instant that started (or was claimed to start) a run: the unique key is
    what makes an instant fire once across any number of server processes."""

    __tablename__ = "trigger_fires"
    __table_args__ = (UniqueConstraint("trigger_id", "instant"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trigger_id: Mapped[int] = mapped_column(ForeignKey("triggers.id", ondelete="CASCADE"))
    instant: Mapped[float] = mapped_column(Float)
    # No foreign key: the row is written first in the transaction that creates the execution.
    execution_id: Mapped[str] = mapped_column(String(40))
    fired_at: Mapped[float] = mapped_column(Float)
    # "schedule" for a scheduled instant, "manual" for one fired by hand.
    kind: Mapped[str] = mapped_column(String(16), default="schedule")


TRIGGERS: Table = cast(Table, TriggerRow.__table__)
FIRES: Table = cast(Table, TriggerFireRow.__table__)


@dataclass(frozen=True)
class Trigger:
    """One trigger as stored (its secret's ciphertext stays inside the store's callers that
    decrypt it; nothing serializes this object whole)."""

    id: int
    workflow_id: str
    name: str
    type: str
    hook_key: str | None
    secret_ciphertext: bytes | None = dataclasses.field(repr=False)
    secret_name: str | None
    spec: dict[str, Any]
    enabled: bool
    retired_at: datetime | None
    state: dict[str, Any]
    next_due_at: float | None
    created_at: datetime
    updated_at: datetime

    @property
    def live(self) -> bool:
        """Declared by the latest version and not disabled."""
        return self.enabled and self.retired_at is None

    @classmethod
    def from_row(cls, row: TriggerRow) -> Trigger:
        return cls(
            id=row.id,
            workflow_id=row.workflow_id,
            name=row.name,
            type=row.type,
            hook_key=row.hook_key,
            secret_ciphertext=row.secret_ciphertext,
            secret_name=row.secret_name,
            spec=dict(row.spec or {}),
            enabled=row.enabled,
            retired_at=row.retired_at,
            state=dict(row.state or {}),
            next_due_at=row.next_due_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@dataclass(frozen=True)
class Fire:
    trigger_id: int
    instant: float
    execution_id: str
    fired_at: float
    kind: str


# -- reading -----------------------------------------------------------------------------


def list_for_workflow(
    session: Session, workflow_id: str, *, include_retired: bool = False
) -> list[Trigger]:
    """A workflow's triggers in declaration order (retired ones last)."""
    query = select(TriggerRow).where(TriggerRow.workflow_id == workflow_id)
    if not include_retired:
        query = query.where(TriggerRow.retired_at.is_(None))
    rows = session.scalars(query.order_by(TriggerRow.retired_at.is_not(None), TriggerRow.id))
    return [Trigger.from_row(r) for r in rows]


def list_of_type(session: Session, trigger_type: str) -> list[Trigger]:
    """Every live-or-disabled (not retired) trigger of one type, of workflows not deleted."""
    rows = session.scalars(
        select(TriggerRow)
        .join(WorkflowRow, WorkflowRow.id == TriggerRow.workflow_id)
        .where(
            TriggerRow.type == trigger_type,
            TriggerRow.retired_at.is_(None),
            WorkflowRow.deleted_at.is_(None),
        )
        .order_by(TriggerRow.workflow_id, TriggerRow.id)
    )
    return [Trigger.from_row(r) for r in rows]


def get(session: Session, workflow_id: str, name: str, *, lock: bool = False) -> Trigger:
    """The (not retired) trigger ``name`` of a workflow; `NotFound` names the ones it has."""
    query = select(TriggerRow).where(
        TriggerRow.workflow_id == workflow_id,
        TriggerRow.name == name,
        TriggerRow.retired_at.is_(None),
    )
    if lock:
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        names = [t.name for t in list_for_workflow(session, workflow_id)]
        have = ", ".join(names) or "none"
        raise NotFound(f"workflow {workflow_id!r} has no trigger {name!r}; its triggers: {have}")
    return Trigger.from_row(row)


def get_by_id(session: Session, trigger_id: int) -> Trigger:
    row = session.get(TriggerRow, trigger_id)
    if row is None:
        raise NotFound(f"trigger #{trigger_id} not found")
    return Trigger.from_row(row)


def lock_workflow_of(session: Session, trigger_id: int) -> Workflow:
    """The workflow of trigger ``trigger_id``, read with its row lock (``FOR UPDATE`` on
    PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serializes writers): one statement for
    what a fire used to read in three. Deleted workflows too (the caller says why it refuses);
    `NotFound` when there is no such trigger."""
    owner = select(TriggerRow.workflow_id).where(TriggerRow.id == trigger_id).scalar_subquery()
    query = select(WorkflowRow).where(WorkflowRow.id == owner)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        raise NotFound(f"trigger #{trigger_id} not found")
    return Workflow.from_row(row)


def get_by_hook_key(session: Session, hook_key: str) -> Trigger | None:
    """The trigger that owns the URL key (retired ones too: the caller says why it refuses)."""
    row = session.scalar(select(TriggerRow).where(TriggerRow.hook_key == hook_key))
    return Trigger.from_row(row) if row is not None else None


def due(session: Session, now: float, *, types: tuple[str, ...], limit: int = 100) -> list[Trigger]:
    """Triggers of ``types`` whose ``next_due_at`` has come, earliest first (retired and
    disabled ones never have one; those of deleted workflows are left out)."""
    rows = session.scalars(
        select(TriggerRow)
        .join(WorkflowRow, WorkflowRow.id == TriggerRow.workflow_id)
        .where(
            TriggerRow.next_due_at <= now,
            TriggerRow.type.in_(types),
            TriggerRow.retired_at.is_(None),
            TriggerRow.enabled.is_(True),
            WorkflowRow.deleted_at.is_(None),
        )
        .order_by(TriggerRow.next_due_at)
        .limit(limit)
    )
    return [Trigger.from_row(r) for r in rows]


def next_due(session: Session, *, types: tuple[str, ...]) -> float | None:
    """The earliest ``next_due_at`` of a live trigger of ``types``, or None."""
    value = session.scalar(
        select(func.min(TriggerRow.next_due_at))
        .join(WorkflowRow, WorkflowRow.id == TriggerRow.workflow_id)
        .where(
            TriggerRow.type.in_(types),
            TriggerRow.retired_at.is_(None),
            TriggerRow.enabled.is_(True),
            WorkflowRow.deleted_at.is_(None),
        )
    )
    return float(value) if value is not None else None


def published_without_rows(session: Session) -> list[str]:
    """Ids of published, not deleted workflows that have no trigger rows at all (published
    before triggers were kept in their own table)."""
    has_rows = select(TriggerRow.id).where(TriggerRow.workflow_id == WorkflowRow.id).exists()
    return list(
        session.scalars(
            select(WorkflowRow.id).where(
                WorkflowRow.latest_version.is_not(None),
                WorkflowRow.deleted_at.is_(None),
                ~has_rows,
            )
        )
    )


def hook_key_holders(session: Session, keys: list[str]) -> dict[str, tuple[str, str]]:
    """key -> (workflow id, trigger name) for each of ``keys`` held by a trigger that is
    declared (not retired) by a workflow not deleted. Keys held by retired triggers or deleted
    workflows are not listed: they may be taken (see `release_hook_key`)."""
    if not keys:
        return {}
    rows = session.execute(
        select(TriggerRow.hook_key, TriggerRow.workflow_id, TriggerRow.name)
        .join(WorkflowRow, WorkflowRow.id == TriggerRow.workflow_id)
        .where(
            TriggerRow.hook_key.in_(keys),
            TriggerRow.retired_at.is_(None),
            WorkflowRow.deleted_at.is_(None),
        )
    )
    return {r.hook_key: (r.workflow_id, r.name) for r in rows}


# -- writing -----------------------------------------------------------------------------


def insert(session: Session, values: Mapping[str, Any]) -> Trigger:
    now = utcnow()
    row = TriggerRow(**{"created_at": now, "updated_at": now, **values})
    session.add(row)
    session.flush()
    return Trigger.from_row(row)


def update_trigger(session: Session, trigger_id: int, **values: Any) -> Trigger:
    row = session.get(TriggerRow, trigger_id)
    if row is None:
        raise NotFound(f"trigger #{trigger_id} not found")
    for key, value in values.items():
        setattr(row, key, value)
    row.updated_at = utcnow()
    session.flush()
    return Trigger.from_row(row)


def release_hook_key(session: Session, hook_key: str, keep: int | None) -> None:
    """Take the URL key from whichever row holds it, unless that is trigger ``keep``."""
    session.execute(
        update(TriggerRow)
        .where(TriggerRow.hook_key == hook_key, TriggerRow.id != (keep or -1))
        .values(hook_key=None, updated_at=utcnow())
    )


def advance(
    session: Session,
    trigger_id: int,
    *,
    expected_due: float | None,
    next_due_at: float | None,
    state: Mapping[str, Any],
) -> bool:
    """Move the trigger's wake time on, if no other process moved it first (compare and set
    on ``next_due_at``); True when this call moved it."""
    table = TRIGGERS
    condition = (
        table.c.next_due_at.is_(None)
        if expected_due is None
        else table.c.next_due_at == expected_due
    )
    result = session.connection().execute(
        update(table)
        .where(table.c.id == trigger_id, condition)
        .values(next_due_at=next_due_at, state=dict(state), updated_at=utcnow())
    )
    return bool(result.rowcount)


def merge_state(session: Session, trigger_id: int, **values: Any) -> None:
    """Set some keys of the trigger's state, keeping the others."""
    row = session.get(TriggerRow, trigger_id, with_for_update=True)
    if row is None:
        raise NotFound(f"trigger #{trigger_id} not found")
    row.state = {**(row.state or {}), **values}
    row.updated_at = utcnow()
    session.flush()


_CLAIM = {
    name: ins.on_conflict_do_nothing(index_elements=["trigger_id", "instant"]).returning(FIRES.c.id)
    for name, ins in (
        ("postgresql", pg_insert(FIRES)),
        ("sqlite", sqlite_insert(FIRES)),
    )
}


def claim_fire(
    session: Session,
    trigger_id: int,
    instant: float,
    execution_id: str,
    fired_at: float,
    *,
    kind: str = "schedule",
) -> str | None:
    """Insert-or-nothing the fire of ``(trigger, instant)``: None when this transaction now
    owns it, else the execution id of whoever fired it first.

    On PostgreSQL a concurrent claim of the same instant waits for the first one's commit and
    then finds its row; no lock outlives a transaction, so none can be lost.
    """
    # RETURNING, not rowcount: psycopg reports -1 (true) for an INSERT ... ON CONFLICT DO
    # NOTHING that inserted nothing, which would claim an instant twice.
    claimed = (
        session.connection()
        .execute(
            _CLAIM[session.get_bind().dialect.name],
            {
                "trigger_id": trigger_id,
                "instant": instant,
                "execution_id": execution_id,
                "fired_at": fired_at,
                "kind": kind,
            },
        )
        .first()
    )
    if claimed is not None:
        return None
    existing = session.scalar(
        select(TriggerFireRow.execution_id).where(
            TriggerFireRow.trigger_id == trigger_id, TriggerFireRow.instant == instant
        )
    )
    return str(existing) if existing is not None else None


def last_fires(session: Session, trigger_id: int, limit: int = 1) -> list[Fire]:
    rows = session.scalars(
        select(TriggerFireRow)
        .where(TriggerFireRow.trigger_id == trigger_id)
        .order_by(TriggerFireRow.instant.desc())
        .limit(limit)
    )
    return [Fire(r.trigger_id, r.instant, r.execution_id, r.fired_at, r.kind) for r in rows]


def count_fires(session: Session, trigger_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(TriggerFireRow)
            .where(TriggerFireRow.trigger_id == trigger_id)
        )
        or 0
    )
