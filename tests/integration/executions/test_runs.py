"""Starting runs over the HTTP API: the pinned version, params, drafts, paused workflows, and
the execution detail a user reads afterwards."""

from __future__ import annotations

from typing import Any

import pytest

from opsflow.status import ExecutionStatus, JobStatus, StepStatus

from .conftest import TEST_TIMEOUT, YAML, Api, step_of

pytestmark = pytest.mark.timeout(TEST_TIMEOUT)

TWO_STEPS = """\
id: two-steps
name: Two steps
steps:
  - id: greet
    type: script
    shell: sh
    run: |
      echo "hello"
      echo "greeting=hi" >> "$OPSFLOW_OUTPUT"
  - id: flaky
    type: script
    shell: sh
    needs: [greet]
    retries: 1
    retry_delay: 0.05s
    run: |
      if [ "$OPSFLOW_ATTEMPT" = 1 ]; then echo "first try fails" >&2; exit 4; fi
      echo "second try works"
"""


def test_run_of_published_workflow_pins_the_version_and_completes(api: Api) -> None:
    api.publish(TWO_STEPS)
    response = api.client.post("/api/v1/workflows/two-steps/runs", json={})
    assert response.status_code == 201, response.text
    started = response.json()
    assert started["workflow_id"] == "two-steps"
    assert started["version"] == 1
    assert started["test_run"] is False
    assert started["trigger_type"] == "manual"
    assert started["started_by"] == "admin"
    assert started["status"] in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)

    detail = api.wait(started["id"])
    assert detail["status"] == ExecutionStatus.COMPLETED, detail["engine_log"]
    assert detail["ended_at"] is not None and detail["duration_ms"] > 0


def test_execution_detail_shows_every_step_attempt_and_the_engine_log(api: Api) -> None:
    api.publish(TWO_STEPS)
    detail = api.run("two-steps")
    assert detail["status"] == ExecutionStatus.COMPLETED
    assert [s["id"] for s in detail["steps"]] == ["greet", "flaky"]

    greet = step_of(detail, "greet")
    assert greet["status"] == StepStatus.SUCCEEDED
    assert greet["outputs"] == {"greeting": "hi", "exit_code": 0}
    (job,) = greet["jobs"]
    assert job["attempt"] == 1
    assert job["status"] == JobStatus.COMPLETED
    assert job["agent_id"].startswith("local-")  # this server's own, kept in its data dir
    assert job["exit_code"] == 0
    assert job["outputs"] == {"greeting": "hi", "exit_code": 0}
    assert job["error"] is None
    assert job["created_at"] <= job["started_at"] <= job["ended_at"]
    assert job["duration_ms"] > 0

    flaky = step_of(detail, "flaky")
    assert flaky["status"] == StepStatus.SUCCEEDED
    first, second = flaky["jobs"]
    assert (first["attempt"], first["status"], first["exit_code"]) == (1, JobStatus.FAILED, 4)
    assert first["error"], "a failed attempt says why"
    assert (second["attempt"], second["status"], second["exit_code"]) == (
        2,
        JobStatus.COMPLETED,
        0,
    )
    assert first["ended_at"] <= second["started_at"]

    messages = [entry["message"] for entry in detail["engine_log"]]
    assert "step greet started" in messages
    assert any(m.startswith("execution completed") for m in messages), messages
    assert all(entry["at"] for entry in detail["engine_log"])


def test_run_of_unknown_workflow_is_not_found(api: Api) -> None:
    response = api.client.post("/api/v1/workflows/no-such-workflow/runs", json={})
    assert response.status_code == 404, response.text
    assert "no-such-workflow" in response.json()["detail"]


# --------------------------------------------------------------------------- params

WITH_PARAMS = """\
id: with-params
params:
  name: {type: string, required: true}
  replicas: {type: integer, default: 2, minimum: 1}
  environment: {type: choice, choices: [staging, production], default: staging}
steps:
  - id: show
    type: script
    shell: sh
    env:
      LINE: "{{ params.name }} x{{ params.replicas }} in {{ params.environment }}"
    run: echo "$LINE"
"""


@pytest.mark.parametrize(
    ("params", "loc", "words"),
    [
        ({"name": "api", "replicas": "three"}, "params.replicas", "not an integer"),
        ({"name": "api", "colour": "red"}, "params.colour", "unknown param"),
        ({"replicas": 3}, "params.name", "required"),
        ({"name": "api", "environment": "moon"}, "params.environment", "not one of the choices"),
        ({"name": "api", "replicas": 0}, "params.replicas", "below the minimum"),
    ],
    ids=["wrong-type", "unknown", "missing-required", "not-a-choice", "below-minimum"],
)
def test_bad_params_are_refused_naming_the_param(
    api: Api, params: dict[str, Any], loc: str, words: str
) -> None:
    api.publish(WITH_PARAMS)
    response = api.client.post("/api/v1/workflows/with-params/runs", json={"params": params})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = response.json()["errors"]
    assert [e["loc"] for e in errors] == [loc], errors
    assert words in errors[0]["msg"]


def test_every_bad_param_is_reported_at_once(api: Api) -> None:
    api.publish(WITH_PARAMS)
    response = api.client.post(
        "/api/v1/workflows/with-params/runs",
        json={"params": {"replicas": "x", "environment": "moon", "extra": 1}},
    )
    assert response.status_code == 422, response.text
    locs = {e["loc"] for e in response.json()["errors"]}
    assert locs == {"params.name", "params.replicas", "params.environment", "params.extra"}


def test_params_as_text_are_read_as_their_declared_types(api: Api) -> None:
    api.publish(WITH_PARAMS)
    as_text = {"name": "api", "replicas": "3", "environment": "production"}
    refused = api.client.post("/api/v1/workflows/with-params/runs", json={"params": as_text})
    assert refused.status_code == 422
    assert [e["loc"] for e in refused.json()["errors"]] == ["params.replicas"]

    detail = api.run("with-params", params=as_text, params_as_text=True)
    assert detail["params"] == {"name": "api", "replicas": 3, "environment": "production"}
    assert detail["status"] == ExecutionStatus.COMPLETED
    assert "api x3 in production" in [line["text"] for line in api.logs(detail["id"])]


def test_defaults_fill_in_params_a_run_leaves_out(api: Api) -> None:
    api.publish(WITH_PARAMS)
    detail = api.run("with-params", params={"name": "db"})
    assert detail["params"] == {"name": "db", "replicas": 2, "environment": "staging"}


# --------------------------------------------------------------------------- drafts, pause

DRAFT = """\
id: only-a-draft
steps:
  - {id: try, type: script, shell: sh, run: echo trying the draft}
"""


def test_a_draft_cannot_be_run_without_asking_for_a_test_run(api: Api) -> None:
    saved = api.client.put("/api/v1/workflows/only-a-draft", content=DRAFT, headers=YAML)
    assert saved.status_code in (200, 201), saved.text
    response = api.client.post("/api/v1/workflows/only-a-draft/runs", json={})
    assert response.status_code == 409, response.text
    detail = response.json()["detail"]
    assert "publish" in detail and "test" in detail


def test_a_test_run_runs_the_draft_and_is_marked_as_one(api: Api) -> None:
    saved = api.client.put("/api/v1/workflows/only-a-draft", content=DRAFT, headers=YAML)
    assert saved.status_code in (200, 201), saved.text
    started = api.start("only-a-draft", test=True)
    assert started["test_run"] is True
    assert started["version"] is None
    detail = api.wait(started["id"])
    assert detail["status"] == ExecutionStatus.COMPLETED
    assert "trying the draft" in [line["text"] for line in api.logs(detail["id"])]
    listed = api.client.get("/api/v1/executions", params={"workflow": "only-a-draft"}).json()
    assert [(e["id"], e["test_run"]) for e in listed["items"]] == [(detail["id"], True)]


def test_a_test_run_sees_the_draft_not_the_published_version(api: Api) -> None:
    api.publish(DRAFT.replace("only-a-draft", "edited-draft"))
    edited = DRAFT.replace("only-a-draft", "edited-draft").replace("trying", "editing")
    saved = api.client.put("/api/v1/workflows/edited-draft", content=edited, headers=YAML)
    assert saved.status_code == 200, saved.text

    published = api.run("edited-draft")
    draft = api.run("edited-draft", test=True)
    assert published["version"] == 1
    assert "trying the draft" in [line["text"] for line in api.logs(published["id"])]
    assert "editing the draft" in [line["text"] for line in api.logs(draft["id"])]


def test_a_paused_workflow_can_still_be_run_by_hand(api: Api) -> None:
    api.publish(DRAFT.replace("only-a-draft", "paused-one"))
    paused = api.client.post("/api/v1/workflows/paused-one/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused"
    detail = api.run("paused-one")
    assert detail["status"] == ExecutionStatus.COMPLETED
    assert detail["version"] == 1


def test_a_run_of_a_version_that_does_not_exist_is_not_found(api: Api) -> None:
    api.publish(DRAFT.replace("only-a-draft", "one-version"))
    response = api.client.post("/api/v1/workflows/one-version/runs", json={"version": 7})
    assert response.status_code == 404, response.text
