"""An alert that keeps firing for longer than the delivery log's seven days is still one
incident: each notification that carries it keeps its dedupe key alive."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from opsflow.store import deliveries as log_store
from opsflow.store import incidents as incidents_store
from opsflow.store.db import Database
from opsflow.store.deliveries import HookDeliveryKey
from tests.integration.triggers.conftest import YAML

NOTIFICATION = Path(__file__).parents[2] / "unit/triggers/payloads/alertmanager_group.json"
WORKFLOW = """\
id: paged
triggers:
  - {type: incident, match: {service: "checkout-api"}}
steps:
  - {id: wait, type: approval, approvers: [admin]}
"""


def test_a_repeat_notification_keeps_the_alerts_dedupe_key_and_counts_on_the_incident(
    client: TestClient, database: Database
) -> None:
    put = client.put("/api/v1/workflows/paged?publish=true", content=WORKFLOW, headers=YAML)
    assert put.status_code in (200, 201), put.text
    (trigger,) = client.get("/api/v1/workflows/paged/triggers").json()
    secret = client.post("/api/v1/workflows/paged/triggers/incident-1/rotate-secret").json()
    hook = {"Authorization": f"Bearer {secret['secret']}"}
    body = NOTIFICATION.read_bytes()
    path = trigger["url"].split("/hooks/", 1)[1]

    first = client.post(f"/hooks/{path}", content=body, headers=hook)
    assert first.status_code == 202, first.text
    with database.session() as session:  # the key is six days old by now
        session.execute(
            update(HookDeliveryKey).values(created_at=datetime.now(UTC) - timedelta(days=6))
        )

    repeat = client.post(f"/hooks/{path}", content=body, headers=hook)
    assert repeat.status_code == 200, repeat.text
    assert repeat.json()["execution_id"] == first.json()["execution_id"]

    later = datetime.now(UTC) + timedelta(days=2)
    with database.session() as session:
        log_store.prune(session, later, int(later.timestamp() // 60))
        keys = list(session.scalars(select(HookDeliveryKey.key)))
    assert keys == [json.loads(body)["alerts"][0]["fingerprint"] + "-20261130140107:firing"]
    incidents = client.get("/api/v1/incidents", params={"status": "firing"}).json()
    assert [(i["fingerprint"], i["notifications"]) for i in incidents] == [("5d2c4f2b9e1a7c30", 2)]
    assert incidents[0]["executions"][0]["execution_id"] == first.json()["execution_id"]
    assert client.get("/api/v1/incidents", params={"status": "resolved"}).json() == []
    assert client.get("/api/v1/incidents", params={"status": "open"}).status_code == 422


def test_an_alerts_run_and_its_incident_commit_together(
    client: TestClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A failure while the incident is written (as a crash there would) must take the run down
    # with it: otherwise a run starts that no incident knows of, its dedupe key unrefreshed.
    put = client.put("/api/v1/workflows/paged?publish=true", content=WORKFLOW, headers=YAML)
    assert put.status_code in (200, 201), put.text
    (trigger,) = client.get("/api/v1/workflows/paged/triggers").json()
    secret = client.post("/api/v1/workflows/paged/triggers/incident-1/rotate-secret").json()
    hook = {"Authorization": f"Bearer {secret['secret']}"}
    body = NOTIFICATION.read_bytes()
    path = trigger["url"].split("/hooks/", 1)[1]

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the incident could not be written")

    with monkeypatch.context() as patch:
        patch.setattr(incidents_store, "link", broken)
        with pytest.raises(RuntimeError, match="could not be written"):
            client.post(f"/hooks/{path}", content=body, headers=hook)
    assert client.get("/api/v1/executions", params={"workflow": "paged"}).json()["items"] == []
    assert client.get("/api/v1/incidents").json() == []

    again = client.post(f"/hooks/{path}", content=body, headers=hook)
    assert again.status_code == 202, again.text
    (incident,) = client.get("/api/v1/incidents").json()
    assert [e["execution_id"] for e in incident["executions"]] == [again.json()["execution_id"]]
