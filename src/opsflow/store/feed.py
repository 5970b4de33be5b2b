"""What the global live stream reads: execution events of every execution (with the
execution's workflow) and workflow changes from the audit log, each after an id."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsflow.store import tables as t
from opsflow.store.runs import EV, EX

# The execution event kinds the stream turns into list updates (engine log entries are not).
FEED_KINDS = ("execution", "step", "job", "approval")
WORKFLOW_ACTIONS = "workflow."

_AUDIT = t.AuditEntry.__table__


def heads(session: Session) -> tuple[int, int]:
    """The newest execution event id and audit id (0 when there are none)."""
    ev = session.connection().execute(select(func.max(EV.c.id))).scalar()
    au = session.connection().execute(select(func.max(_AUDIT.c.id))).scalar()
    return int(ev or 0), int(au or 0)


def execution_events_after(session: Session, after_id: int, limit: int) -> list[dict[str, Any]]:
    """Events of the `FEED_KINDS` with an id above ``after_id``, oldest first, each with
    ``id, at, kind, data, execution_id, workflow_id``."""
    rows = session.connection().execute(
        select(EV.c.id, EV.c.at, EV.c.kind, EV.c.data, EV.c.execution_id, EX.c.workflow_id)
        .join(EX, EX.c.id == EV.c.execution_id)
        .where(EV.c.id > after_id, EV.c.kind.in_(FEED_KINDS))
        .order_by(EV.c.id)
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


def workflow_changes_after(session: Session, after_id: int, limit: int) -> list[dict[str, Any]]:
    """Audit entries ``workflow.*`` with an id above ``after_id``, oldest first, each with
    ``id, at, actor, action, target``."""
    rows = session.connection().execute(
        select(_AUDIT.c.id, _AUDIT.c.at, _AUDIT.c.actor, _AUDIT.c.action, _AUDIT.c.target)
        .where(_AUDIT.c.id > after_id, _AUDIT.c.action.startswith(WORKFLOW_ACTIONS))
        .order_by(_AUDIT.c.id)
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]
