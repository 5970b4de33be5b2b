"""Schedules fire in real server processes, on a test clock (``OPSFLOW_SCHEDULER_CLOCK``):
across Europe/Berlin's DST changes, after downtime by their ``missed`` policy, and exactly once
per instant when two servers share one PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from opsflow.store.db import normalize_url
from tests.servers import RunningServer, clean_env, fresh_database, run_server

STEPS = "steps:\n  - {id: wait, type: approval, approvers: [admin]}\n"


def server(db_url: str, data_dir: Path, clock: str) -> Any:  # a context manager of RunningServer
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **clean_env(),
        "OPSFLOW_ADMIN_PASSWORD": "admin-pw-for-tests",
        "OPSFLOW_LOCAL_AGENT": "false",
        "OPSFLOW_SCHEDULER_CLOCK": clock,
    }
    return run_server(db_url, data_dir, env=env)


def api(srv: RunningServer) -> httpx.Client:
    return httpx.Client(
        base_url=f"{srv.url}/api/v1", headers={"Authorization": f"Bearer {srv.token}"}, timeout=30
    )


def publish(client: httpx.Client, workflow_id: str, triggers: str) -> None:
    body = f"id: {workflow_id}\ntriggers:\n{triggers}{STEPS}"
    response = client.put(
        f"/workflows/{workflow_id}?publish=true",
        content=body,
        headers={"Content-Type": "application/yaml"},
    )
    assert response.status_code in (200, 201), response.text


def fired(client: httpx.Client, workflow_id: str) -> list[str]:
    """The instants of the workflow's scheduled runs, oldest first (from each run's trigger
    record: ``source`` is ``<trigger> at <instant>``)."""
    page = client.get(
        "/executions", params={"workflow": workflow_id, "trigger": "schedule", "limit": 500}
    ).json()
    instants = [e["trigger"]["source"].split(" at ", 1)[1] for e in page["items"]]
    return sorted(instants, key=datetime.fromisoformat)


def wait_for(check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.2)  # polling the API is the event a test of another process has


def clock(start: str, rate: float, delay: float) -> str:
    """A test clock that stands at ``start`` for ``delay`` real seconds, then runs."""
    return f"{start},{rate},{time.time() + delay}"


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        pytest.param(
            "2026-03-29T00:50:00+01:00",
            "2026-03-29T04:10:00+02:00",
            {
                "fixed": ["2026-03-29T03:00:00+02:00"],
                "hourly": [
                    "2026-03-29T01:00:00+01:00",
                    "2026-03-29T03:00:00+02:00",
                    "2026-03-29T04:00:00+02:00",
                ],
            },
            id="spring-forward",
        ),
        pytest.param(
            "2026-10-25T01:50:00+02:00",
            "2026-10-25T03:10:00+01:00",
            {
                "fixed": ["2026-10-25T02:30:00+02:00"],
                "hourly": [
                    "2026-10-25T02:00:00+02:00",
                    "2026-10-25T02:00:00+01:00",
                    "2026-10-25T03:00:00+01:00",
                ],
            },
            id="fall-back",
        ),
    ],
)
def test_schedules_cross_daylight_saving_changes_in_berlin(
    db_url: str, tmp_path: Path, start: str, end: str, expected: dict[str, list[str]]
) -> None:
    rate = 7200.0  # two hours a second
    berlin = "timezone: Europe/Berlin"
    # Published while the clock stands at ``start``; then a server whose clock runs from
    # there (however long it takes to start: instants a little late still fire).
    with server(db_url, tmp_path / "one", clock(start, 1, 3600)) as srv, api(srv) as client:
        publish(client, "fixed", f"  - {{type: schedule, cron: '30 2 * * *', {berlin}}}\n")
        publish(client, "hourly", f"  - {{type: schedule, cron: '0 * * * *', {berlin}}}\n")
    with server(db_url, tmp_path / "two", clock(start, rate, 0)) as srv, api(srv) as client:
        wait_for(lambda: all(len(fired(client, w)) >= len(v) for w, v in expected.items()))
        time.sleep(0.5)  # a second look: no instant of the window fires twice
        window_end = datetime.fromisoformat(end)
        for workflow_id, instants in expected.items():
            got = fired(client, workflow_id)
            assert got[: len(instants)] == instants
            assert all(datetime.fromisoformat(i) > window_end for i in got[len(instants) :])


def test_missed_instants_after_downtime_follow_the_policy(db_url: str, tmp_path: Path) -> None:
    start = "2026-06-01T00:00:00+00:00"
    every_5 = "cron: '*/5 * * * *'"
    with server(db_url, tmp_path / "one", clock(start, 1, 3600)) as srv, api(srv) as client:
        for policy in ("skip", "run-once", "all"):
            publish(client, policy, f"  - {{type: schedule, {every_5}, missed: {policy}}}\n")
        schedules = client.get("/schedules").json()
        assert [s["next_fire_at"] for s in schedules] == ["2026-06-01T00:05:00+00:00"] * 3
    # Ten hours and two minutes later: 120 instants passed while no server ran.
    later = "2026-06-01T10:02:00+00:00"
    with server(db_url, tmp_path / "two", clock(later, 1, 3600)) as srv, api(srv) as client:
        wait_for(lambda: len(fired(client, "all")) >= 100 and len(fired(client, "run-once")) >= 1)
        time.sleep(0.5)
        assert fired(client, "skip") == []
        assert fired(client, "run-once") == ["2026-06-01T10:00:00+00:00"]
        caught_up = fired(client, "all")
        assert len(caught_up) == 100
        assert caught_up[0] == "2026-06-01T01:45:00+00:00"
        assert caught_up[-1] == "2026-06-01T10:00:00+00:00"
        by_name = {s["workflow_id"]: s for s in client.get("/schedules").json()}
        assert by_name["skip"]["next_fire_at"] == "2026-06-01T10:05:00+00:00"
        assert by_name["run-once"]["last_fire"]["instant"] == "2026-06-01T10:00:00+00:00"
        first = client.get(
            "/executions", params={"workflow": "run-once", "trigger": "schedule"}
        ).json()["items"][0]
        log = [e["message"] for e in client.get(f"/executions/{first['id']}").json()["engine_log"]]
        assert any("missed 120 instants" in line and "run-once" in line for line in log)


@pytest.fixture(params=["postgresql"])
def shared_pg(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from fresh_database(request, tmp_path_factory, "sched")


def test_two_servers_fire_each_instant_exactly_once(shared_pg: str, tmp_path: Path) -> None:
    rate = 3600.0  # an hour a second: 500 per-minute instants in under 9 s
    start = "2026-02-01T00:00:30+00:00"
    count = 500
    shared = clock(start, rate, 9)
    with ExitStack() as stack:
        one = stack.enter_context(server(shared_pg, tmp_path / "one", shared))
        two = stack.enter_context(server(shared_pg, tmp_path / "two", shared))
        client = stack.enter_context(api(one))
        stack.enter_context(api(two))
        publish(client, "tick", "  - {type: schedule, cron: '* * * * *'}\n")
        engine = create_engine(normalize_url(shared_pg))
        query = text(
            "SELECT trigger->>'instant' AS instant, count(*) AS n FROM executions "
            "WHERE workflow_id = 'tick' GROUP BY 1"
        )

        def seen() -> dict[str, int]:
            with engine.connect() as conn:
                return {r.instant: r.n for r in conn.execute(query)}

        wait_for(lambda: len(seen()) >= count, timeout=60)
        found = seen()
        engine.dispose()
    # Every minute from the first one fired, each exactly once, none missing.
    first = min(datetime.fromisoformat(i).timestamp() for i in found)
    expected = [datetime.fromtimestamp(first + 60 * i, UTC).isoformat() for i in range(count)]
    assert [found.get(i) for i in expected] == [1] * count
    assert set(found.values()) == {1}


def test_a_cron_line_that_never_fires_is_refused_and_a_stored_one_is_skipped(
    db_url: str, tmp_path: Path
) -> None:
    start = "2026-06-01T00:04:00+00:00"
    with server(db_url, tmp_path / "one", clock(start, 1, 3600)) as srv, api(srv) as client:
        refused = client.put(
            "/workflows/feb30?publish=true",
            content=f"id: feb30\ntriggers:\n  - {{type: schedule, cron: '0 0 30 2 *'}}\n{STEPS}",
            headers={"Content-Type": "application/yaml"},
        )
        assert refused.status_code == 422, refused.text
        assert "triggers[0].cron" in refused.text
        assert "February has no 30th" in refused.text
        publish(client, "broken", "  - {type: schedule, cron: '0 * * * *'}\n")
        publish(client, "fine", "  - {type: schedule, cron: '*/5 * * * *'}\n")
    # A line that matches no date, as a version of opsflow before the check could store it,
    # due now.
    engine = create_engine(normalize_url(db_url))
    with engine.begin() as conn:
        row = conn.execute(text("SELECT id, spec FROM triggers WHERE workflow_id = 'broken'")).one()
        spec = row.spec if isinstance(row.spec, dict) else json.loads(row.spec)
        conn.execute(
            text("UPDATE triggers SET spec = :spec, next_due_at = :due WHERE id = :id"),
            {
                "spec": json.dumps({**spec, "cron": "0 0 30 2 *"}),
                "due": datetime.fromisoformat(start).timestamp() - 3600,
                "id": row.id,
            },
        )
    engine.dispose()
    # A minute a second: the other schedule keeps firing, the broken one is marked.
    with server(db_url, tmp_path / "two", clock(start, 60, 0)) as srv, api(srv) as client:
        wait_for(lambda: len(fired(client, "fine")) >= 2)

        def by_id() -> dict[str, Any]:
            response = client.get("/schedules")
            assert response.status_code == 200, response.text
            return {s["workflow_id"]: s for s in response.json()}

        wait_for(lambda: by_id()["broken"]["error"] is not None)
        broken = by_id()["broken"]
        assert "never fires" in broken["error"]
        assert broken["preview"] == []
        assert broken["next_fire_at"] is None
        assert fired(client, "broken") == []
        # Turning it off and on again answers, and keeps it marked.
        base = "/workflows/broken/triggers/schedule-1"
        assert client.post(f"{base}/disable").status_code == 200
        enabled = client.post(f"{base}/enable")
        assert enabled.status_code == 200, enabled.text
        assert "never fires" in by_id()["broken"]["error"]


def test_a_paused_workflow_lets_instants_pass_without_a_record_and_takes_a_hand_fire(
    db_url: str, tmp_path: Path
) -> None:
    start = "2026-06-01T11:59:30+00:00"
    tokyo = "{type: schedule, cron: '* * * * *', timezone: Asia/Tokyo}"
    # A minute a second; the workflow is published before the clock moves.
    with server(db_url, tmp_path / "one", clock(start, 60, 2)) as srv, api(srv) as client:
        publish(client, "minutely", f"  - {tokyo}\n")
        wait_for(lambda: len(fired(client, "minutely")) >= 1)
        assert client.post("/workflows/minutely/pause").status_code == 200
        engine = create_engine(normalize_url(db_url))
        query = text("SELECT next_due_at FROM triggers WHERE workflow_id = 'minutely'")

        def due_at() -> float:
            with engine.connect() as conn:
                return float(conn.execute(query).scalar_one())

        paused_at = due_at()
        wait_for(lambda: due_at() >= paused_at + 180)  # three instants passed, paused
        engine.dispose()
        (listed,) = client.get("/schedules").json()
        last = listed["last_fire"]
        assert last["status"] != "not started" and last["error"] is None
        assert (
            last["execution_id"]
            == client.get(
                "/executions", params={"workflow": "minutely", "trigger": "schedule"}
            ).json()["items"][0]["id"]
        )
        ran = len(fired(client, "minutely"))
        # Fired by hand while paused: allowed, with its instant in the schedule's zone.
        hand = client.post("/workflows/minutely/triggers/schedule-1/fire")
        assert hand.status_code == 201, hand.text
        run = client.get(f"/executions/{hand.json()['execution_id']}").json()
        assert run["trigger_data"]["instant"].endswith("+09:00")
        runs = client.get(
            "/executions", params={"workflow": "minutely", "trigger": "schedule"}
        ).json()["items"]
        assert len(runs) == ran + 1  # the hand fire, and still nothing from the paused instants
