"""Listing executions: filters (workflow, status, trigger, who, when), sorting and pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from opsflow.runtime.host import RuntimeHost
from opsflow.runtime.launch import run_request
from opsflow.status import ExecutionStatus
from opsflow.store import runs as runs_store

from .conftest import TEST_TIMEOUT, Api

pytestmark = pytest.mark.timeout(TEST_TIMEOUT)

PASSES = "id: list-pass\nsteps:\n  - {id: ok, type: script, shell: sh, run: 'true'}\n"
FAILS = "id: list-fail\nsteps:\n  - {id: boom, type: script, shell: sh, run: 'exit 1'}\n"


@dataclass(frozen=True)
class History:
    """Four finished runs, oldest first: passes by admin, fails by admin, passes by the
    operator, passes on a schedule."""

    since: str  # just before the first of them
    until: str  # just after the last of them
    runs: list[dict[str, Any]]

    @property
    def window(self) -> dict[str, str]:
        """The filter that sees these four runs and no other test's."""
        return {"since": self.since, "until": self.until}

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.runs]


def start_scheduled(api: Api, workflow_id: str) -> str:
    """A run as the scheduler starts one (there is no API route for a trigger's run)."""
    services = api.client.app.state.services  # type: ignore[attr-defined]
    host: RuntimeHost = services.extra["runtime"]
    with services.session() as session:
        request = run_request(
            session,
            workflow_id,
            params={},
            started_by=None,
            trigger_type="schedule",
            trigger={"cron": "0 3 * * *"},
        )
    return host.runtime.start_execution(request)


@pytest.fixture(scope="module")
def history(api: Api) -> History:
    api.publish(PASSES)
    api.publish(FAILS)
    since = datetime.now(UTC).isoformat()
    operator = {"Authorization": f"Bearer {api.token_for('operator')}"}
    first = api.run("list-pass")
    second = api.run("list-fail")
    by_operator = api.client.post("/api/v1/workflows/list-pass/runs", json={}, headers=operator)
    assert by_operator.status_code == 201, by_operator.text
    third = api.wait(by_operator.json()["id"])
    fourth = api.wait(start_scheduled(api, "list-pass"))
    return History(since, datetime.now(UTC).isoformat(), [first, second, third, fourth])


def listed(api: Api, **params: Any) -> list[str]:
    response = api.client.get("/api/v1/executions", params=params)
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()["items"]]


def test_runs_are_listed_newest_first_with_their_summary(api: Api, history: History) -> None:
    response = api.client.get("/api/v1/executions", params=history.window)
    body = response.json()
    assert body["total"] == 4
    assert [e["id"] for e in body["items"]] == history.ids[::-1]
    newest = body["items"][0]
    assert newest["workflow_id"] == "list-pass"
    assert newest["trigger_type"] == "schedule" and newest["started_by"] is None
    assert newest["status"] == ExecutionStatus.COMPLETED
    assert newest["version"] == 1 and newest["duration_ms"] >= 0
    assert "steps" not in newest, "the list is a summary; the detail has the steps"


def test_filters_narrow_the_list(api: Api, history: History) -> None:
    a1, b1, a2, a3 = history.ids
    window = history.window
    assert set(listed(api, workflow="list-pass")) == {a1, a2, a3}
    assert listed(api, **window, status="failed") == [b1]
    assert set(listed(api, **window, status=["completed", "failed"])) == {a1, b1, a2, a3}
    assert listed(api, **window, status="running") == []
    assert listed(api, **window, trigger="schedule") == [a3]
    assert set(listed(api, **window, trigger="manual")) == {a1, b1, a2}
    assert listed(api, **window, started_by="operator") == [a2]
    assert listed(api, workflow="list-pass", started_by="admin") == [a1]
    assert listed(api, workflow="no-such-workflow") == []


def test_since_and_until_bound_the_creation_time(api: Api, history: History) -> None:
    a1, b1, a2, a3 = history.ids
    created = [datetime.fromisoformat(r["created_at"]) for r in history.runs]
    middle = (created[1] + (created[2] - created[1]) / 2).isoformat()
    assert listed(api, since=middle, until=history.until) == [a3, a2]
    assert listed(api, since=history.since, until=middle) == [b1, a1]
    zulu = middle.replace("+00:00", "Z")
    assert listed(api, since=zulu, until=history.until) == [a3, a2], "Z means UTC too"


def test_a_run_is_within_since_its_own_created_at_and_outside_until_it(api: Api) -> None:
    """Filtering with the very ``created_at`` the API shows must find (since) or leave out
    (until) that run, whatever digits the server keeps beyond the microseconds it shows."""
    api.publish(PASSES.replace("list-pass", "list-edges"))
    services = api.client.app.state.services  # type: ignore[attr-defined]
    for _ in range(20):  # a run whose stored time rounds up when shown, if the store keeps one
        run = api.run("list-edges")
        with services.session() as session:
            stored = runs_store.get_execution(session, run["id"]).created_at
        if datetime.fromisoformat(run["created_at"]).timestamp() > stored:
            break
    assert run["id"] in listed(api, workflow="list-edges", since=run["created_at"])
    assert run["id"] not in listed(api, workflow="list-edges", until=run["created_at"])


def test_pages_and_sort_order(api: Api, history: History) -> None:
    a1, b1, a2, a3 = history.ids
    page: dict[str, str | int] = {**history.window, "limit": 2}
    first = api.client.get("/api/v1/executions", params={**page, "sort": "created_at"}).json()
    second = api.client.get(
        "/api/v1/executions", params={**page, "sort": "created_at", "offset": 2}
    ).json()
    assert (first["total"], first["limit"], first["offset"]) == (4, 2, 0)
    assert [e["id"] for e in first["items"]] == [a1, b1]
    assert [e["id"] for e in second["items"]] == [a2, a3]
    assert listed(api, **history.window, sort="-created_at", offset=3) == [a1]
    assert listed(api, **history.window, offset=10) == []
    by_status = listed(api, **history.window, sort="status")
    assert by_status[:3] != [b1] and by_status[-1] == b1, "completed sorts before failed"


def test_an_unknown_trigger_type_is_refused_listing_the_allowed_ones(api: Api) -> None:
    """It once answered an empty list, as if no run had been started that way."""
    response = api.client.get("/api/v1/executions", params={"trigger": "bogus"})
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["loc"] == "query.trigger"
    for allowed in ("manual", "schedule", "webhook", "git", "incident", "workflow"):
        assert allowed in error["msg"], error


def test_an_unknown_sort_column_is_refused_naming_sort(api: Api) -> None:
    response = api.client.get("/api/v1/executions", params={"sort": "-colour"})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith("sort: unknown column 'colour'")
    assert "created_at" in detail and "workflow_id" in detail


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"status": "sleeping"}, "query.status[0]"),
        ({"limit": 0}, "query.limit"),
        ({"sort": "colour"}, "query.sort"),
        ({"since": "last tuesday"}, "query.since"),
        ({"trigger": "bogus"}, "query.trigger"),
    ],
    ids=["status", "limit", "sort", "since", "trigger"],
)
def test_bad_list_queries_are_refused_at_their_parameter(
    api: Api, params: dict[str, Any], loc: str
) -> None:
    response = api.client.get("/api/v1/executions", params=params)
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["errors"]] == [loc]
