"""The delivery log through the API: one route shape for a whole workflow and for one trigger
(in the path, or ``?name=``), the same answers either way, and a located 404."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from opsflow.store import deliveries as deliveries_store
from opsflow.store.db import Database
from opsflow.store.deliveries import DeliveryOutcome, NewDelivery
from tests.integration.triggers.test_foundation import apply, workflow


def delivery(trigger_name: str, reason: str) -> NewDelivery:
    return NewDelivery(
        request_id=reason,
        workflow_id="logged",
        trigger_name=trigger_name,
        trigger_type="webhook",
        received_at=datetime.now(UTC),
        source_address="127.0.0.1",
        outcome=DeliveryOutcome.REFUSED,
        status_code=401,
        reason=reason,
    )


def test_a_workflows_deliveries_and_one_triggers_come_from_one_route_shape(
    client: TestClient, database: Database
) -> None:
    apply(client, workflow("logged", "  - {type: webhook}\n  - {type: webhook, key: other-hook}\n"))
    with database.session() as session:
        deliveries_store.record(
            session,
            [
                delivery("webhook-1", "a1"),
                delivery("other-hook", "b1"),
                delivery("webhook-1", "a2"),
            ],
        )
    base = "/api/v1/workflows/logged"

    def reasons(path: str, **params: str) -> list[str]:
        response = client.get(path, params=params)
        assert response.status_code == 200, response.text
        return [d["reason"] for d in response.json()["items"]]

    assert reasons(f"{base}/deliveries") == ["a2", "b1", "a1"]
    assert reasons(f"{base}/triggers/webhook-1/deliveries") == ["a2", "a1"]
    assert reasons(f"{base}/deliveries", name="webhook-1") == ["a2", "a1"]
    assert reasons(f"{base}/deliveries", name="other-hook", limit="1") == ["b1"]
    paged = client.get(f"{base}/triggers/webhook-1/deliveries", params={"limit": 1}).json()
    assert reasons(f"{base}/deliveries", name="webhook-1", before=str(paged["next_before"])) == [
        "a1"
    ]
    for path, params in (
        (f"{base}/triggers/webhok-1/deliveries", {}),
        (f"{base}/deliveries", {"name": "webhok-1"}),
    ):
        missing = client.get(path, params=params)
        assert missing.status_code == 404, missing.text
        assert "its triggers: webhook-1, other-hook" in missing.json()["detail"]
    assert client.get("/api/v1/workflows/nope/deliveries").status_code == 404
