"""The insert-or-nothing claims that make an event start one run (a schedule's instant, a
delivery's idempotency key: a second claim finds the first one's execution), and the pruning
of the delivery log, keys and rate counters, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from opsflow.store import deliveries as deliveries_store
from opsflow.store import triggers as triggers_store
from opsflow.store.db import Database
from opsflow.store.deliveries import DeliveryOutcome, NewDelivery
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


def test_deliveries_keys_and_rate_windows_are_pruned_after_their_time(
    client: TestClient, database: Database
) -> None:
    apply(client, workflow("pruned", "  - {type: webhook}\n"))
    hook = rows(database, "pruned")["webhook-1"]
    now = datetime.now(UTC)
    old = now - timedelta(days=deliveries_store.KEEP_DAYS, seconds=1)
    window = int(now.timestamp() // 60)

    def delivery(at: datetime, reason: str) -> NewDelivery:
        return NewDelivery(
            request_id=reason,
            workflow_id="pruned",
            trigger_name="webhook-1",
            trigger_type="webhook",
            received_at=at,
            source_address="127.0.0.1",
            outcome=DeliveryOutcome.REFUSED,
            status_code=401,
            reason=reason,
        )

    with database.session() as session:
        deliveries_store.record(session, [delivery(old, "eight days ago"), delivery(now, "now")])
        deliveries_store.claim_key(session, hook.id, "old-key", "ex-old", old)
        deliveries_store.claim_key(session, hook.id, "new-key", "ex-new", now)
        deliveries_store.count_in_window(session, "k", window - 1, "accepted")
        assert deliveries_store.count_in_window(session, "k", window, "accepted") == 1
    with database.session() as session:
        assert deliveries_store.prune(session, now, window) == 1
    with database.session() as session:
        left = deliveries_store.list_deliveries(session, "pruned")
        assert [d.reason for d in left] == ["now"]
        # The old key is gone, so it may start a run again; the new one still deduplicates.
        assert deliveries_store.claim_key(session, hook.id, "old-key", "ex-2", now) is None
        assert deliveries_store.claim_key(session, hook.id, "new-key", "ex-3", now) == "ex-new"
        assert deliveries_store.count_in_window(session, "k", window, "accepted") == 2
        assert deliveries_store.count_in_window(session, "k", window - 1, "accepted") == 1
