"""Bad definitions are refused by the API with every problem located, and nothing is saved."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.integration.api.conftest import YAML, hello_yaml

BROKEN = """id: broken
triggers:
  - {type: schedule, cron: "61 * * * *"}
steps:
  - id: a
    type: script
    shell: sh
    run: echo a
    needs: [c]
  - id: a
    type: script
    shell: sh
    run: echo dup
  - id: b
    type: terraform
    action: plan
    source: {dir: infra}
    needs: [a]
  - id: c
    type: script
    shell: sh
    needs: [b.rejected]
    run: echo c
    timeout: soon
"""


def _errors(body: dict[str, object]) -> dict[str, dict[str, object]]:
    items = body["errors"]
    assert isinstance(items, list)
    return {str(e["loc"]): e for e in items}


def test_validate_accepts_a_good_definition(client: TestClient) -> None:
    response = client.post("/api/v1/workflows/validate", content=hello_yaml(), headers=YAML)
    assert response.status_code == 200
    assert response.json() == {"valid": True, "id": "hello", "warnings": []}


def test_every_problem_of_a_file_is_reported_at_once_with_its_line(client: TestClient) -> None:
    response = client.post("/api/v1/workflows/validate", content=BROKEN, headers=YAML)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 422 and body["type"].endswith("spec-invalid")
    errors = _errors(body)
    assert set(errors) == {
        "triggers[0].cron",
        "steps[0].needs[0]",
        "steps[1].id",
        "steps[3].needs[0]",
        "steps[3].timeout",
    }
    assert errors["triggers[0].cron"]["line"] == 3
    assert "a -> b -> c -> a" in str(errors["steps[0].needs[0]"]["msg"])
    assert errors["steps[1].id"]["line"] == 10
    assert "no outcome 'rejected'" in str(errors["steps[3].needs[0]"]["msg"])
    assert errors["steps[3].timeout"]["line"] == 24


def test_create_refuses_a_bad_definition_and_saves_nothing(client: TestClient) -> None:
    response = client.put("/api/v1/workflows/broken", content=BROKEN, headers=YAML)
    assert response.status_code == 422
    assert len(response.json()["errors"]) == 5
    assert client.get("/api/v1/workflows/broken").status_code == 404


def test_yaml_syntax_errors_are_located(client: TestClient) -> None:
    response = client.post("/api/v1/workflows", content="id: x\nsteps: [\n", headers=YAML)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert "YAML syntax error" in error["msg"] and error["line"] == 3


def test_json_definitions_get_located_paths(client: TestClient) -> None:
    response = client.post(
        "/api/v1/workflows",
        json={"id": "j", "steps": [{"id": "a", "type": "script", "shell": "sh", "needs": ["zz"]}]},
    )
    assert response.status_code == 422
    locs = {e["loc"] for e in response.json()["errors"]}
    assert "steps[0].needs[0]" in locs


def test_the_url_id_must_equal_the_definition_id(client: TestClient) -> None:
    response = client.put("/api/v1/workflows/other", content=hello_yaml(), headers=YAML)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["loc"] == "id" and error["line"] == 1
    assert "'hello'" in error["msg"] and "'other'" in error["msg"]


def test_an_unknown_content_type_is_refused_with_the_accepted_ones(client: TestClient) -> None:
    response = client.post(
        "/api/v1/workflows", content=b"<xml/>", headers={"Content-Type": "application/xml"}
    )
    assert response.status_code == 415
    assert "application/yaml" in response.json()["detail"]


def test_request_validation_errors_are_problems_too(client: TestClient) -> None:
    response = client.get("/api/v1/workflows?limit=0")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"] == "query.limit"


IGNORED_FIELDS = """id: ignored
steps:
  - {id: child, type: workflow, workflow: hello, timeout: 2s, retries: 2}
  - {id: check, type: condition, needs: [child], if: "true", timeout: 2s}
"""


def test_a_timeout_or_retries_a_step_type_would_ignore_is_refused_and_nothing_saved(
    client: TestClient,
) -> None:
    response = client.put("/api/v1/workflows/ignored", content=IGNORED_FIELDS, headers=YAML)
    assert response.status_code == 422, response.text
    errors = _errors(response.json())
    assert set(errors) == {"steps[0].timeout", "steps[0].retries", "steps[1].timeout"}
    assert errors["steps[0].timeout"]["line"] == 3
    assert "the child run has its own workflow timeout" in str(errors["steps[0].timeout"]["msg"])
    assert client.get("/api/v1/workflows/ignored").status_code == 404


APPLY_ELSEWHERE = """id: elsewhere
steps:
  - {id: plan, type: terraform, action: plan, source: {dir: infra}, workspace: staging}
  - {id: apply, type: terraform, action: apply, needs: [plan], plan_from: plan, workspace: prod}
"""


def test_an_apply_of_a_saved_plan_into_another_workspace_is_refused_at_its_line(
    client: TestClient,
) -> None:
    response = client.put("/api/v1/workflows/elsewhere", content=APPLY_ELSEWHERE, headers=YAML)
    assert response.status_code == 422, response.text
    errors = _errors(response.json())
    assert set(errors) == {"steps[1].workspace"}
    assert errors["steps[1].workspace"]["line"] == 4
    assert "uses the plan's workspace (step 'plan' has 'staging')" in str(
        errors["steps[1].workspace"]["msg"]
    )
    assert client.get("/api/v1/workflows/elsewhere").status_code == 404
