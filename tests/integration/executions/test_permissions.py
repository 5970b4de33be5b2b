"""Who may do what with runs: viewers read, operators run and cancel, editors test drafts."""

from __future__ import annotations

import pytest

from opsflow.status import ExecutionStatus

from .conftest import TEST_TIMEOUT, YAML, Api

pytestmark = pytest.mark.timeout(TEST_TIMEOUT)

GUARDED = "id: guarded\nsteps:\n  - {id: say, type: script, shell: sh, run: echo guarded}\n"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_viewer_reads_executions_but_cannot_run_or_cancel(api: Api) -> None:
    api.publish(GUARDED)
    finished = api.run("guarded")
    viewer = bearer(api.token_for("viewer"))
    eid = finished["id"]
    for path in (
        "/api/v1/executions",
        f"/api/v1/executions/{eid}",
        f"/api/v1/executions/{eid}/logs",
        f"/api/v1/executions/{eid}/logs/download",
        f"/api/v1/executions/{eid}/events",
    ):
        response = api.client.get(path, headers=viewer)
        assert response.status_code == 200, (path, response.text)

    run = api.client.post("/api/v1/workflows/guarded/runs", json={}, headers=viewer)
    assert run.status_code == 403, run.text
    assert "workflows:run" in run.json()["detail"]
    cancel = api.client.post(f"/api/v1/executions/{eid}/cancel", json={}, headers=viewer)
    assert cancel.status_code == 403, cancel.text
    assert "executions:cancel" in cancel.json()["detail"]


def test_an_operator_runs_and_cancels_and_is_named_as_starter(api: Api) -> None:
    api.publish(GUARDED.replace("echo guarded", "sleep 30"))
    operator = bearer(api.token_for("operator"))
    started = api.client.post("/api/v1/workflows/guarded/runs", json={}, headers=operator)
    assert started.status_code == 201, started.text
    assert started.json()["started_by"] == "operator"
    eid = started.json()["id"]
    cancel = api.client.post(
        f"/api/v1/executions/{eid}/cancel", json={"mode": "force"}, headers=operator
    )
    assert cancel.status_code == 200, cancel.text
    assert cancel.json()["cancel"]["by"] == "operator"
    assert api.wait(eid)["status"] == ExecutionStatus.CANCELLED


def test_only_editors_may_start_a_test_run_of_a_draft(api: Api) -> None:
    saved = api.client.put(
        "/api/v1/workflows/guarded-draft",
        content=GUARDED.replace("guarded", "guarded-draft"),
        headers=YAML,
    )
    assert saved.status_code in (200, 201), saved.text
    operator = bearer(api.token_for("operator"))
    refused = api.client.post(
        "/api/v1/workflows/guarded-draft/runs", json={"test": True}, headers=operator
    )
    assert refused.status_code == 403, refused.text
    assert "workflows:update" in refused.json()["detail"]

    editor = bearer(api.token_for("editor"))
    allowed = api.client.post(
        "/api/v1/workflows/guarded-draft/runs", json={"test": True}, headers=editor
    )
    assert allowed.status_code == 201, allowed.text
    assert api.wait(allowed.json()["id"])["status"] == ExecutionStatus.COMPLETED


def test_without_a_token_nothing_about_runs_is_shown(api: Api) -> None:
    anonymous = {"Authorization": ""}
    for method, path in (
        ("GET", "/api/v1/executions"),
        ("GET", "/api/v1/executions/anything/events"),
        ("POST", "/api/v1/workflows/guarded/runs"),
    ):
        response = api.client.request(method, path, headers=anonymous, json={})
        assert response.status_code == 401, (path, response.text)
