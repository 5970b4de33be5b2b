"""The incidents list: what each Alertmanager notification did to the incidents it carried.

Called by the hook ingress after it settled a notification (runs started, repeats found,
alerts filtered out): every alert of the notification updates its incident (status, last
seen, notifications), and a run it started or found is linked to it. This is bookkeeping
beside the runs, in its own transaction: exactly-once starts are the ingress's dedupe claims,
not this.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from opsflow.runtime.reconciler import new_id
from opsflow.spec.triggers import IncidentTrigger
from opsflow.store import deliveries as deliveries_store
from opsflow.store import incidents as incidents_store
from opsflow.triggers.delivery import HookTarget, Settled
from opsflow.triggers.incident import (
    Notification,
    dedupe_key,
    mismatch,
    read_notification,
    variables,
)


def record(
    session: Session,
    *,
    trigger_id: int,
    workflow_id: str,
    trigger_name: str,
    trigger: IncidentTrigger,
    notification: Notification,
    executions: Sequence[str | None],
    now: float,
) -> None:
    """``executions[i]`` is the run alert ``i`` started or found (None when none). Alerts the
    trigger's patterns do not select are not its incidents and are left out."""
    for alert, execution_id in zip(notification.alerts, executions, strict=True):
        if mismatch(trigger, alert):
            continue
        seen = variables(alert, notification)
        incident = incidents_store.observe(
            session,
            new_id=new_id(),
            trigger_id=trigger_id,
            workflow_id=workflow_id,
            trigger_name=trigger_name,
            alert=seen,
            now=now,
        )
        if execution_id is not None:
            incidents_store.link(session, incident, execution_id, alert.status, now)
            # While the alert keeps firing, its dedupe key must outlive the delivery log's
            # seven days: a repeat notification a week on is still the same incident.
            deliveries_store.touch_key(
                session, trigger_id, dedupe_key(alert), datetime.fromtimestamp(now, UTC)
            )


def observe(
    session: Session, target: HookTarget, body: bytes, settled: list[Settled], now: float
) -> None:
    """The hook desk's observer for incident triggers (`opsflow.triggers.delivery.Observer`):
    ``settled`` has one item per alert of the notification, in its order."""
    record(
        session,
        trigger_id=target.trigger_id,
        workflow_id=target.workflow_id,
        trigger_name=target.name,
        trigger=IncidentTrigger.model_validate(dict(target.spec)),
        notification=read_notification(body),
        executions=[s.execution_id for s in settled],
        now=now,
    )
