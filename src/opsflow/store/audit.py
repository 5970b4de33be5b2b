"""The audit log: one append-only row per change, written in the same transaction as the change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsflow.store import tables as t
from opsflow.store.paging import Page


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


def record(
    session: Session, actor: str, action: str, target: str, detail: dict[str, Any] | None = None
) -> None:
    """Append one entry; ``action`` is ``<resource>.<verb>`` such as ``workflow.publish``."""
    session.add(t.AuditEntry(actor=actor, action=action, target=target, detail=detail or {}))
    session.flush()


def list_audit(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[AuditRecord]:
    """Entries newest first; ``action`` matches a prefix (``workflow.`` for any workflow);
    ``since`` (inclusive) and ``until`` (exclusive) bound ``at``."""
    query = select(t.AuditEntry)
    if actor is not None:
        query = query.where(t.AuditEntry.actor == actor)
    if action is not None:
        query = query.where(t.AuditEntry.action.startswith(action, autoescape=True))
    if target is not None:
        query = query.where(t.AuditEntry.target == target)
    if since is not None:
        query = query.where(t.AuditEntry.at >= since)
    if until is not None:
        query = query.where(t.AuditEntry.at < until)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(t.AuditEntry.id.desc()).limit(limit).offset(offset))
    items = [
        AuditRecord(
            id=r.id, at=r.at, actor=r.actor, action=r.action, target=r.target, detail=r.detail
        )
        for r in rows
    ]
    return Page(items=items, total=total, limit=limit, offset=offset)
