"""Incidents from Alertmanager: its webhook notifications (payload version 4) on the trigger's
hook URL, one run per alert the trigger's ``match`` selects.

Alertmanager groups alerts: one notification carries every alert of a group, and it repeats
the notification (``group_interval``, ``repeat_interval``) while they fire. An alert is one
incident from the time it starts firing (``startsAt``) until it resolves, named by its
fingerprint and that start: the first notification that carries it starts a run, the repeats
carry the same dedupe key and start nothing, and an alert that resolves and fires again has a
new ``startsAt``, so a new incident and a new run. With ``on: [firing, resolved]`` the
resolution starts one more run (``incident.status == "resolved"``).

Alertmanager does not sign its notifications: the trigger's secret must come as
``Authorization: Bearer <secret>`` (``http_config.authorization``) or as the password of basic
auth (``http_config.basic_auth``), compared in constant time before the body is read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsflow.spec.triggers import AlertStatus, IncidentSource, IncidentTrigger, TriggerType
from opsflow.triggers.ingress import BodyInvalid, Headers, NotAuthenticated, Reading, Skip, Start
from opsflow.triggers.webhook import same_secret

MAX_BODY_BYTES = 25 * 1024 * 1024
PAYLOAD_VERSION = "4"


def authenticate(secret: str, headers: Headers) -> bool:
    """Bearer ``<secret>`` or basic ``<any user>:<secret>``; otherwise `NotAuthenticated`."""
    authorization = headers.get("authorization", "").strip()
    if not authorization:
        raise NotAuthenticated(
            "Alertmanager notifications must carry the trigger's secret: set "
            "http_config.authorization.credentials (Bearer) or http_config.basic_auth.password "
            "in the receiver's webhook_config"
        )
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    match scheme.lower():
        case "bearer":
            given = value
        case "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise NotAuthenticated(
                    "the basic credentials are not base64 of user:password"
                ) from exc
            given = decoded.partition(":")[2]
        case _:
            raise NotAuthenticated(
                "the Authorization header must read 'Bearer <secret>' or 'Basic ...'"
            )
    if not same_secret(given, secret):
        raise NotAuthenticated("the credentials are not this trigger's secret")
    return True


@dataclass(frozen=True)
class Alert:
    """One alert of a notification, as Alertmanager sends it."""

    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    ends_at: str
    generator_url: str
    fingerprint: str

    @property
    def incident_id(self) -> str:
        """This alert's incident: its fingerprint and the moment it started firing."""
        stamp = re.sub(r"[^0-9]", "", self.starts_at)[:14]
        return f"{self.fingerprint}-{stamp}" if stamp else self.fingerprint

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "") or self.fingerprint


@dataclass(frozen=True)
class Notification:
    """An Alertmanager webhook notification (payload version 4)."""

    receiver: str
    status: str
    group_key: str
    external_url: str
    truncated_alerts: int
    alerts: list[Alert]


def _texts(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BodyInvalid(f"{where} must be an object of names to text", loc=where)
    return {str(k): str(v) for k, v in value.items()}


def read_notification(body: bytes) -> Notification:
    """Parse the body; `BodyInvalid` says what is not an Alertmanager notification."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BodyInvalid(f"the body is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise BodyInvalid("the body must be a JSON object (an Alertmanager notification)")
    version = str(raw.get("version", ""))
    if version != PAYLOAD_VERSION:
        raise BodyInvalid(
            f"Alertmanager webhook payload version {version or '(none)'} is not read; "
            f"version {PAYLOAD_VERSION} is (Alertmanager 0.x sends it)",
            loc="version",
        )
    alerts_raw = raw.get("alerts")
    if not isinstance(alerts_raw, list):
        raise BodyInvalid("'alerts' must be a list of alerts", loc="alerts")
    alerts = []
    for i, item in enumerate(alerts_raw):
        if not isinstance(item, dict):
            raise BodyInvalid("an alert must be an object", loc=f"alerts[{i}]")
        labels = _texts(item.get("labels"), f"alerts[{i}].labels")
        status = str(item.get("status", ""))
        if status not in (AlertStatus.FIRING, AlertStatus.RESOLVED):
            raise BodyInvalid(
                f"status {status!r} is neither firing nor resolved", loc=f"alerts[{i}].status"
            )
        alerts.append(
            Alert(
                status=status,
                labels=labels,
                annotations=_texts(item.get("annotations"), f"alerts[{i}].annotations"),
                starts_at=str(item.get("startsAt", "")),
                ends_at=str(item.get("endsAt", "")),
                generator_url=str(item.get("generatorURL", "")),
                fingerprint=str(item.get("fingerprint") or _fingerprint(labels)),
            )
        )
    truncated = raw.get("truncatedAlerts", 0)
    return Notification(
        receiver=str(raw.get("receiver", "")),
        status=str(raw.get("status", "")),
        group_key=str(raw.get("groupKey", "")),
        external_url=str(raw.get("externalURL", "")),
        truncated_alerts=truncated if isinstance(truncated, int) else 0,
        alerts=alerts,
    )


def _fingerprint(labels: Mapping[str, str]) -> str:
    """A stable name for an alert that came without one (only very old senders)."""
    text = "\xff".join(f"{k}\xfe{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def mismatch(trigger: IncidentTrigger, alert: Alert) -> str:
    """Empty when every ``match`` (labels) and ``annotations`` pattern matches the whole value
    (a missing label reads as empty text, as in Prometheus); else which one does not."""
    for kind, patterns, values in (
        ("label", trigger.match, alert.labels),
        ("annotation", trigger.annotations, alert.annotations),
    ):
        for name, pattern in patterns.items():
            value = values.get(name, "")
            if re.fullmatch(pattern, value) is None:
                shown = repr(value) if name in values else "(missing)"
                return f"{kind} {name}={shown} does not match {pattern!r}"
    return ""


def variables(alert: Alert, notification: Notification) -> dict[str, Any]:
    """The run's ``incident`` template names."""
    title = (
        alert.annotations.get("summary")
        or alert.annotations.get("title")
        or alert.annotations.get("description")
        or alert.name
    )
    return {
        "id": alert.incident_id,
        "title": title,
        "status": alert.status,
        "severity": alert.labels.get("severity", ""),
        "labels": alert.labels,
        "annotations": alert.annotations,
        "starts_at": alert.starts_at,
        "ends_at": alert.ends_at if alert.status == AlertStatus.RESOLVED else "",
        "fingerprint": alert.fingerprint,
        "source": IncidentSource.ALERTMANAGER.value,
        "generator_url": alert.generator_url,
        "external_url": notification.external_url,
        "receiver": notification.receiver,
        "group_key": notification.group_key,
    }


def dedupe_key(alert: Alert) -> str:
    """One run per incident and status: repeats of a firing alert share it."""
    return f"{alert.incident_id}:{alert.status}"


def read(trigger: IncidentTrigger, notification: Notification) -> Reading:
    """One `Start` per alert the trigger takes, one `Skip` (with why) per alert it does not."""
    items: list[Start | Skip] = []
    wanted = {s.value for s in trigger.on}
    for alert in notification.alerts:
        key = dedupe_key(alert)
        what = f"alert {alert.name} ({alert.fingerprint}) {alert.status}"
        if alert.status not in wanted:
            on = ", ".join(sorted(wanted))
            items.append(Skip(f"{what}: the trigger runs on [{on}]", dedupe_key=key))
            continue
        why = mismatch(trigger, alert)
        if why:
            items.append(Skip(f"{what}: {why}", dedupe_key=key))
            continue
        summary = what
        if notification.truncated_alerts:
            summary += (
                f"; Alertmanager left {notification.truncated_alerts} alerts of this group out "
                "(max_alerts)"
            )
        items.append(
            Start(
                dedupe_key=key,
                trigger={"incident": variables(alert, notification)},
                summary=summary,
                source=f"alertmanager {alert.fingerprint} {alert.status}",
            )
        )
    return Reading(items)


class AlertmanagerSource:
    """Alertmanager notifications: bearer or basic auth with the trigger's secret, at most
    25 MiB, one run per matching alert while it fires (and on resolve when asked)."""

    trigger_type = TriggerType.INCIDENT
    max_body_bytes = MAX_BODY_BYTES

    def authenticate(self, spec: Mapping[str, Any], secret: str, headers: Headers) -> bool:
        return authenticate(secret, headers)

    def check_body(
        self, spec: Mapping[str, Any], secret: str, headers: Headers, body: bytes, now: float
    ) -> None:
        """Never called: `authenticate` decides from the headers alone."""

    def read(self, spec: Mapping[str, Any], headers: Headers, body: bytes) -> Reading:
        return read(IncidentTrigger.model_validate(dict(spec)), read_notification(body))
