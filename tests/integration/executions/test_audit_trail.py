"""The audit log records people's actions on runs (run, approve, reject, cancel, retry, skip)
in the same transaction as the action, and the audit API filters by actor, action and time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .conftest import Api

GATED = """
id: audit-gate
steps:
  - {id: build, type: script, shell: sh, run: "exit 0"}
  - {id: approve, type: approval, needs: [build], message: "Ship?"}
  - {id: ship, type: script, needs: [approve], shell: sh, run: "exit 1", allow_skip: true}
"""


def _audit(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = api.client.get("/api/v1/audit", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _until(api: Api, execution_id: str, status: str) -> None:
    deadline = time.monotonic() + 20
    while api.detail(execution_id)["status"] != status:
        assert time.monotonic() < deadline, api.detail(execution_id)["status"]
        time.sleep(0.05)


def test_runs_approvals_retries_skips_and_cancels_are_audited(api: Api) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    api.publish(GATED)
    first = api.start("audit-gate")["id"]
    _until(api, first, "paused")
    answer = api.client.post(
        f"/api/v1/executions/{first}/steps/approve/approve", json={"note": "go"}
    )
    assert answer.status_code == 200, answer.text
    _until(api, first, "failed")
    retried = api.client.post(f"/api/v1/executions/{first}/steps/ship/retry")
    assert retried.status_code == 200, retried.text
    _until(api, first, "failed")
    skipped = api.client.post(f"/api/v1/executions/{first}/steps/ship/skip")
    assert skipped.status_code == 200, skipped.text

    second = api.start("audit-gate")["id"]
    _until(api, second, "paused")
    rejected = api.client.post(f"/api/v1/executions/{second}/steps/approve/reject", json={})
    assert rejected.status_code == 200, rejected.text
    third = api.start("audit-gate")["id"]
    _until(api, third, "paused")
    cancelled = api.client.post(f"/api/v1/executions/{third}/cancel", json={"reason": "no"})
    assert cancelled.status_code in (200, 202), cancelled.text

    mine = [
        (e["action"], e["target"])
        for e in _audit(api, actor="admin", since=before.isoformat())
        if e["action"].startswith(("execution.", "approval.", "step."))
    ]
    assert list(reversed(mine)) == [
        ("execution.run", first),
        ("approval.approve", f"{first}/approve"),
        ("step.retry", f"{first}/ship"),
        ("step.skip", f"{first}/ship"),
        ("execution.run", second),
        ("approval.reject", f"{second}/approve"),
        ("execution.run", third),
        ("execution.cancel", third),
    ]
    runs = _audit(api, action="execution.run", since=before.isoformat())
    assert {e["target"] for e in runs} >= {first, second, third}
    assert all(e["detail"]["workflow"] == "audit-gate" for e in runs if e["target"] == first)
    assert _audit(api, actor="nobody-at-all") == []
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert _audit(api, since=later) == []
    assert len(_audit(api, until=before.isoformat(), action="execution.")) == len(
        [e for e in _audit(api, action="execution.") if e["at"] < before.isoformat()]
    )


def test_a_bad_time_is_refused_naming_the_field(api: Api) -> None:
    response = api.client.get("/api/v1/audit", params={"until": "tomorrow"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == "query.until"


@pytest.mark.parametrize(
    ("name", "value"),
    [("until", "0001-01-01T00:00:00+14:00"), ("since", "9999-12-31T23:59:59-14:00")],
)
def test_a_time_beyond_the_years_a_date_holds_in_utc_is_refused_naming_the_field(
    api: Api, name: str, value: str
) -> None:
    response = api.client.get("/api/v1/audit", params={name: value})  # was a 500
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["loc"] == f"query.{name}"
    assert "outside the years 1 to 9999 in UTC" in error["msg"]
