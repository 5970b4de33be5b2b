"""Incidents: the alerts incident triggers received, one row per alert from the moment it
started firing until it resolved, and the executions each one started.

An incident is named per trigger by its ``incident_key`` (the alert's fingerprint and start,
`opsflow.triggers.incident.Alert.incident_id`): every notification that carries the alert
updates the same row (its status, when it was last seen, how many notifications), so the list
shows whether it still fires even when no run starts on resolve. Rows are written with
insert-or-nothing on that unique key, so replicas receiving the same notification agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsflow.store.base import Base, JSONType
from opsflow.store.runs import ExecutionRow


class IncidentRow(Base):
    __tablename__ = "incidents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    trigger_id: Mapped[int] = mapped_column(Integer, ForeignKey("triggers.id", ondelete="CASCADE"))
    workflow_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    trigger_name: Mapped[str] = mapped_column(String(64))
    incident_key: Mapped[str] = mapped_column(String(120))
    fingerprint: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # firing | resolved
    title: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(64), default="")
    labels: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    annotations: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    starts_at: Mapped[str] = mapped_column(String(40), default="")
    ends_at: Mapped[str] = mapped_column(String(40), default="")
    generator_url: Mapped[str] = mapped_column(Text, default="")
    first_seen_at: Mapped[float] = mapped_column(Float)
    last_seen_at: Mapped[float] = mapped_column(Float, index=True)
    notifications: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (UniqueConstraint("trigger_id", "incident_key"),)


class IncidentExecutionRow(Base):
    """An execution an incident started, and on which alert status (firing or resolved)."""

    __tablename__ = "incident_executions"

    incident_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    execution_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    alert_status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_incident_executions_execution_id", "execution_id"),)


@dataclass(frozen=True)
class IncidentRun:
    execution_id: str
    alert_status: str
    status: str | None  # the execution's status now; None when it was deleted
    created_at: float


@dataclass(frozen=True)
class Incident:
    id: str
    workflow_id: str
    trigger_name: str
    incident_key: str
    fingerprint: str
    source: str
    status: str
    title: str
    severity: str
    labels: dict[str, Any]
    annotations: dict[str, Any]
    starts_at: str
    ends_at: str
    generator_url: str
    first_seen_at: float
    last_seen_at: float
    notifications: int
    executions: tuple[IncidentRun, ...] = ()

    @classmethod
    def from_row(cls, row: IncidentRow, runs: Sequence[IncidentRun] = ()) -> Incident:
        return cls(
            id=row.id,
            workflow_id=row.workflow_id,
            trigger_name=row.trigger_name,
            incident_key=row.incident_key,
            fingerprint=row.fingerprint,
            source=row.source,
            status=row.status,
            title=row.title,
            severity=row.severity,
            labels=dict(row.labels or {}),
            annotations=dict(row.annotations or {}),
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            generator_url=row.generator_url,
            first_seen_at=row.first_seen_at,
            last_seen_at=row.last_seen_at,
            notifications=row.notifications,
            executions=tuple(runs),
        )


def _insert_or_nothing(
    session: Session, model: type[Base], values: Mapping[str, Any], keys: list[str]
) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            pg_insert(model).values(**values).on_conflict_do_nothing(index_elements=keys)
        )
    else:
        session.execute(
            sqlite_insert(model).values(**values).on_conflict_do_nothing(index_elements=keys)
        )


def observe(
    session: Session,
    *,
    new_id: str,
    trigger_id: int,
    workflow_id: str,
    trigger_name: str,
    alert: Mapping[str, Any],
    now: float,
) -> str:
    """Record one notification of an alert (``alert`` = the run's ``incident`` variables);
    returns its incident's id (``new_id`` when this is the first notification)."""
    key = str(alert["id"])
    _insert_or_nothing(
        session,
        IncidentRow,
        dict(
            id=new_id,
            trigger_id=trigger_id,
            workflow_id=workflow_id,
            trigger_name=trigger_name,
            incident_key=key,
            fingerprint=str(alert.get("fingerprint", "")),
            source=str(alert.get("source", "")),
            status=str(alert["status"]),
            title=str(alert.get("title", "")),
            severity=str(alert.get("severity", "")),
            labels=dict(alert.get("labels") or {}),
            annotations=dict(alert.get("annotations") or {}),
            starts_at=str(alert.get("starts_at", "")),
            ends_at=str(alert.get("ends_at", "")),
            generator_url=str(alert.get("generator_url", "")),
            first_seen_at=now,
            last_seen_at=now,
            notifications=0,
        ),
        ["trigger_id", "incident_key"],
    )
    where = (IncidentRow.trigger_id == trigger_id, IncidentRow.incident_key == key)
    changes: dict[str, Any] = {
        "last_seen_at": now,
        "notifications": IncidentRow.notifications + 1,
        "title": str(alert.get("title", "")),
        "annotations": dict(alert.get("annotations") or {}),
    }
    # A late repeat of "firing" never reopens a resolved incident: firing again after a
    # resolve has a new start, so a new key and a new incident.
    if alert["status"] == "resolved":
        changes.update(status="resolved", ends_at=str(alert.get("ends_at", "")))
    session.execute(update(IncidentRow).where(*where).values(**changes))
    found = session.scalar(select(IncidentRow.id).where(*where))
    assert found is not None  # inserted above or before
    return str(found)


def link(
    session: Session, incident_id: str, execution_id: str, alert_status: str, now: float
) -> None:
    """Remember that ``execution_id`` was started by the incident (on ``alert_status``)."""
    _insert_or_nothing(
        session,
        IncidentExecutionRow,
        {
            "incident_id": incident_id,
            "execution_id": execution_id,
            "alert_status": alert_status,
            "created_at": now,
        },
        ["incident_id", "execution_id"],
    )


def list_incidents(
    session: Session,
    *,
    workflow_id: str | None = None,
    status: str | None = None,
    limit: int = 50,
    before: float | None = None,
) -> list[Incident]:
    """Incidents, the most recently notified first, each with its executions (oldest first)."""
    query = select(IncidentRow).order_by(IncidentRow.last_seen_at.desc(), IncidentRow.id)
    if workflow_id is not None:
        query = query.where(IncidentRow.workflow_id == workflow_id)
    if status is not None:
        query = query.where(IncidentRow.status == status)
    if before is not None:
        query = query.where(IncidentRow.last_seen_at < before)
    rows = list(session.scalars(query.limit(limit)))
    runs: dict[str, list[IncidentRun]] = {row.id: [] for row in rows}
    if rows:
        linked = session.execute(
            select(
                IncidentExecutionRow.incident_id,
                IncidentExecutionRow.execution_id,
                IncidentExecutionRow.alert_status,
                IncidentExecutionRow.created_at,
                ExecutionRow.status,
            )
            .outerjoin(ExecutionRow, ExecutionRow.id == IncidentExecutionRow.execution_id)
            .where(IncidentExecutionRow.incident_id.in_(list(runs)))
            .order_by(IncidentExecutionRow.created_at)
        )
        for r in linked:
            runs[r.incident_id].append(
                IncidentRun(r.execution_id, r.alert_status, r.status, r.created_at)
            )
    return [Incident.from_row(row, runs[row.id]) for row in rows]
