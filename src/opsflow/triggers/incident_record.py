"""The incidents list: what each Alertmanager notification did to the incidents it carried.

Called by the hook ingress for each alert of a notification: every alert updates its
incident (status, last seen, notifications), and a run it started or found is linked to it in
the same transaction that starts or finds the run, so a crash between the two cannot leave a
run without its incident (nor an incident's dedupe key unrefreshed).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from opsflow.runtime.reconciler import new_id
from opsflow.spec.triggers import IncidentTrigger
from opsflow.store import deliveries as deliveries_store
from opsflow.store import incidents as incidents_store
from opsflow.triggers.delivery import HookTarget, ItemObserver
from opsflow.triggers.incident import (
    Alert,
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
    alert: Alert,
    execution_id: str | None,
    now: float,
) -> None:
    """Update the incident of ``alert`` (one of ``notification``'s) and link ``execution_id``,
    the run it started or found (None when none). An alert the trigger's patterns do not
    select is not its incident and is left out."""
    if mismatch(trigger, alert):
        return
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
        # While the alert keeps firing, its dedupe key must outlive the delivery log's seven
        # days: a repeat notification a week on is still the same incident.
        deliveries_store.touch_key(
            session, trigger_id, dedupe_key(alert), datetime.fromtimestamp(now, UTC)
        )


def observer(target: HookTarget, body: bytes) -> ItemObserver:
    """The hook desk's observer for incident triggers (`opsflow.triggers.delivery.Observer`):
    item ``i`` of the desk's reading is alert ``i`` of the notification (`incident.read`)."""
    trigger = IncidentTrigger.model_validate(dict(target.spec))
    notification = read_notification(body)

    def observe(session: Session, index: int, execution_id: str | None, now: float) -> None:
        record(
            session,
            trigger_id=target.trigger_id,
            workflow_id=target.workflow_id,
            trigger_name=target.name,
            trigger=trigger,
            notification=notification,
            alert=notification.alerts[index],
            execution_id=execution_id,
            now=now,
        )

    return observe
