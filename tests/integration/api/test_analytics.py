"""``GET /analytics`` against a seeded history on both databases: every figure is checked
against our own plain SQL rows reduced in Python (a different road to the same numbers)."""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from opsflow.config import Settings
from opsflow.store.db import Database
from tests.history import seed_history

DAY = 86400.0
END = datetime(2026, 11, 20, tzinfo=UTC).timestamp()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[94]


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-3)


def _rows(db: Database, sql: str, **params: Any) -> list[Any]:
    with db.read() as session:
        return list(session.connection().execute(text(sql), params))


def expected(db: Database, since: float, until: float, workflow: str | None) -> dict[str, Any]:
    """The analytics of the window, from plain rows and Python."""
    where = "created_at >= :s AND created_at < :u AND test_run = :f"
    params: dict[str, Any] = {"s": since, "u": until, "f": False}
    if workflow:
        where += " AND workflow_id = :w"
        params["w"] = workflow
    ex = _rows(
        db,
        f"SELECT id, workflow_id, status, created_at, started_at, ended_at "
        f"FROM executions WHERE {where}",
        **params,
    )
    terminal = {"completed", "failed", "cancelled", "rejected", "error"}
    ended = [e for e in ex if e.status in terminal]
    durations = [(e.ended_at - e.started_at) * 1000 for e in ended if e.started_at is not None]
    completed = sum(e.status == "completed" for e in ex)
    failed = sum(e.status in ("failed", "error") for e in ex)
    days: dict[str, Counter[str]] = defaultdict(Counter)
    for e in ex:
        day = datetime.fromtimestamp(e.created_at, UTC).date().isoformat()
        kind = "completed" if e.status == "completed" else "failed"
        days[day][kind if e.status in ("completed", "failed", "error") else "other"] += 1
    runs = Counter(e.workflow_id for e in ex)
    ids = {e.id: e.workflow_id for e in ex}
    steps: dict[tuple[str, str], list[float]] = defaultdict(list)
    for s in _rows(
        db,
        "SELECT execution_id, step_id, type, status, started_at, ended_at FROM execution_steps",
    ):
        if (
            s.execution_id in ids
            and s.type != "approval"
            and s.status not in ("pending", "waiting", "running", "skipped")
            and s.started_at is not None
            and s.ended_at is not None
        ):
            steps[(ids[s.execution_id], s.step_id)].append((s.ended_at - s.started_at) * 1000)
    # jobs and gates by their own time, test runs included; of the workflow when filtered
    workflow_of = {e.id: e.workflow_id for e in _rows(db, "SELECT id, workflow_id FROM executions")}

    def counted(execution_id: str, at: float) -> bool:
        return since <= at < until and (not workflow or workflow_of[execution_id] == workflow)

    agents: dict[str, list[Any]] = defaultdict(list)
    for j in _rows(db, "SELECT execution_id, agent_id, status, created_at FROM jobs"):
        if counted(j.execution_id, j.created_at) and j.agent_id is not None:
            agents[j.agent_id].append(j.status)
    waits, pending, total_gates = [], 0, 0
    for a in _rows(db, "SELECT execution_id, status, opened_at, decided_at FROM approvals"):
        if counted(a.execution_id, a.opened_at):
            total_gates += 1
            pending += a.status == "pending"
            if a.decided_at is not None:
                waits.append((a.decided_at - a.opened_at) * 1000)
    return {
        "total": len(ex),
        "completed": completed,
        "failed": failed,
        "ended": len(ended),
        "success_rate": completed / len(ended) if ended else None,
        "avg": statistics.fmean(durations) if durations else None,
        "p95": _p95(durations),
        "workflows": len(runs),
        "days": days,
        "runs": runs,
        "steps": steps,
        "agents": agents,
        "gates": (total_gates, pending, waits),
    }


@pytest.fixture
def seeded(client: TestClient, settings: Settings) -> Database:
    db = Database(settings.db_url)
    seed_history(db, executions=900, until=END, days=45, workflows=6, seed=3, test_runs=40)
    return db


@pytest.mark.parametrize("workflow", [None, "wf-01"])
def test_analytics_agree_with_the_rows(
    client: TestClient, seeded: Database, workflow: str | None
) -> None:
    since, until = END - 30 * DAY, END - 2 * DAY
    query: dict[str, str] = {"since": _iso(since), "until": _iso(until)}
    if workflow:
        query["workflow"] = workflow
    response = client.get("/api/v1/analytics", params=query)
    assert response.status_code == 200, response.text
    got = response.json()
    want = expected(seeded, since, until, workflow)
    s = got["summary"]
    assert want["total"] > 50
    assert s["total_executions"] == want["total"]
    assert s["completed"] == want["completed"]
    assert s["failed"] == want["failed"]
    assert s["other"] == want["total"] - want["completed"] - want["failed"]
    assert s["ended"] == want["ended"]
    assert _close(s["success_rate"], want["success_rate"])
    assert _close(s["avg_duration_ms"], want["avg"])
    assert _close(s["p95_duration_ms"], want["p95"])
    assert s["active_workflows"] == want["workflows"]

    assert len(got["daily"]) == 28
    for day in got["daily"]:
        counts = want["days"].get(day["day"], Counter())
        assert (day["completed"], day["failed"], day["other"]) == (
            counts["completed"],
            counts["failed"],
            counts["other"],
        ), day["day"]

    top = got["top_workflows"]
    assert [t["runs"] for t in top] == [n for _, n in want["runs"].most_common(10)]
    for t in top:
        assert t["runs"] == want["runs"][t["workflow_id"]]

    slow = got["slowest_steps"]
    by_avg = sorted(((statistics.fmean(v), k) for k, v in want["steps"].items()), reverse=True)
    assert [(x["workflow_id"], x["step_id"]) for x in slow] == [k for _, k in by_avg[:10]]
    for x in slow:
        values = want["steps"][(x["workflow_id"], x["step_id"])]
        assert x["runs"] == len(values)
        assert _close(x["avg_duration_ms"], statistics.fmean(values))
        assert _close(x["max_duration_ms"], max(values))

    agents = {a["agent_id"]: a for a in got["agents"]}
    assert set(agents) == set(want["agents"])
    for agent_id, statuses in want["agents"].items():
        assert agents[agent_id]["jobs"] == len(statuses)
        assert agents[agent_id]["completed"] == statuses.count("completed")
        assert agents[agent_id]["failed"] == statuses.count("failed")

    total_gates, pending, waits = want["gates"]
    ap = got["approvals"]
    assert (ap["total"], ap["pending"], ap["decided"]) == (total_gates, pending, len(waits))
    assert _close(ap["avg_wait_ms"], statistics.fmean(waits))
    assert _close(ap["p95_wait_ms"], _p95(waits))
    assert _close(ap["max_wait_ms"], max(waits))


def test_an_empty_window_answers_zeros(client: TestClient, seeded: Database) -> None:
    response = client.get(
        "/api/v1/analytics", params={"since": "2020-01-01", "until": "2020-01-03"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["summary"]["total_executions"] == 0
    assert body["summary"]["success_rate"] is None
    assert body["summary"]["p95_duration_ms"] is None
    assert [d["day"] for d in body["daily"]] == ["2020-01-01", "2020-01-02"]
    assert body["top_workflows"] == [] and body["agents"] == []


def test_since_as_a_duration_counts_back_from_until(client: TestClient, seeded: Database) -> None:
    until = END - DAY
    body = client.get("/api/v1/analytics", params={"since": "7d", "until": _iso(until)}).json()
    assert body["window"]["since"].startswith("2026-11-12")
    assert (
        body["summary"]["total_executions"]
        == expected(seeded, until - 7 * DAY, until, None)["total"]
    )


def test_the_default_window_is_the_last_30_days(client: TestClient) -> None:
    body = client.get("/api/v1/analytics").json()
    since = datetime.fromisoformat(body["window"]["since"]).timestamp()
    until = datetime.fromisoformat(body["window"]["until"]).timestamp()
    assert abs(until - time.time()) < 60
    assert until - since == pytest.approx(30 * DAY)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": "2026-11-10", "until": "2026-11-01"}, "since"),
        ({"since": "2024-01-01", "until": "2026-01-01"}, "since"),
        ({"since": "5x"}, "since"),
        # Outside the dates a window's ends are written back as: these were 500s.
        ({"until": "0001-01-01"}, "until"),
        ({"until": "0001-01-01T00:00:00+14:00"}, "until"),
        ({"since": "9999-12-31T23:59:59-14:00"}, "since"),
        ({"since": "0001-01-01T00:00:00+14:00", "until": "0001-02-01"}, "since"),
    ],
)
def test_bad_windows_are_refused_naming_the_field(
    client: TestClient, query: dict[str, str], field: str
) -> None:
    response = client.get("/api/v1/analytics", params=query)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["errors"][0]["loc"] == f"query.{field}"
    assert field in problem["detail"]
