"""The insert-or-nothing claims that make an event start one run: a schedule's instant and a
delivery's idempotency key. A second claim finds the first one's execution, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from opsflow.store import deliveries as deliveries_store
from opsflow.store import triggers as triggers_store
from opsflow.store.db import Database
from tests.integration.triggers.test_foundation import apply, rows, workflow


def test_a_second_claim_finds_the_first_ones_execution(
    client: TestClient, database: Database
) -> None:
    apply(client, workflow("claims", "  - {type: schedule, cron: '@daily'}\n  - {type: webhook}\n"))
    found = rows(database, "claims")
    schedule, hook = found["schedule-1"].id, found["webhook-1"].id
    now = datetime.now(UTC)
    with database.session() as session:
        assert triggers_store.claim_fire(session, schedule, 100.0, "ex-1", 1.0) is None
        assert deliveries_store.claim_key(session, hook, "msg_1", "ex-2", now) is None
    with database.session() as session:
        assert triggers_store.claim_fire(session, schedule, 100.0, "ex-3", 2.0) == "ex-1"
        assert deliveries_store.claim_key(session, hook, "msg_1", "ex-4", now) == "ex-2"
        assert triggers_store.claim_fire(session, schedule, 200.0, "ex-5", 2.0) is None
        assert deliveries_store.claim_key(session, hook, "msg_2", "ex-6", now) is None
