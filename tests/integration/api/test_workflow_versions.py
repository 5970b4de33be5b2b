"""Workflows through the API: drafts, versions, status, duplicate, delete, on both databases."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.integration.api.conftest import YAML, hello_yaml


def test_publish_creates_numbered_versions_and_unchanged_publishes_nothing(
    client: TestClient,
) -> None:
    created = client.post("/api/v1/workflows", content=hello_yaml(), headers=YAML)
    assert created.status_code == 201, created.text
    assert created.json()["workflow"]["status"] == "draft"
    assert created.json()["version"] is None

    first = client.post("/api/v1/workflows/hello/publish")
    assert first.status_code == 201
    assert first.json() == {
        "workflow_id": "hello",
        "version": 1,
        "created": True,
        "status": "active",
        "warnings": [],
    }

    again = client.post("/api/v1/workflows/hello/publish")
    assert again.status_code == 200
    assert again.json()["created"] is False and again.json()["version"] == 1

    # Same meaning, different formatting and comments: still unchanged.
    reformatted = "# a comment\n" + hello_yaml().replace("name: Hello hello", "name: 'Hello hello'")
    put = client.put("/api/v1/workflows/hello?publish=true", content=reformatted, headers=YAML)
    assert put.status_code == 200
    assert put.json()["created_version"] is False and put.json()["version"] == 1

    changed = client.put(
        "/api/v1/workflows/hello?publish=true", content=hello_yaml(echo="bye"), headers=YAML
    )
    assert changed.json()["created_version"] is True and changed.json()["version"] == 2
    versions = client.get("/api/v1/workflows/hello/versions").json()
    assert [v["number"] for v in versions] == [2, 1]


def test_editing_the_draft_never_changes_a_published_version(client: TestClient) -> None:
    client.put("/api/v1/workflows/hello?publish=true", content=hello_yaml(), headers=YAML)
    edit = client.put("/api/v1/workflows/hello", content=hello_yaml(echo="draft"), headers=YAML)
    assert edit.status_code == 200

    detail = client.get("/api/v1/workflows/hello").json()
    assert detail["latest_version"] == 1
    assert detail["has_unpublished_changes"] is True
    assert "echo draft" in detail["draft_yaml"]
    v1 = client.get("/api/v1/workflows/hello/versions/1").json()
    assert v1["definition"]["steps"][0]["run"] == "echo hi"
    assert "echo hi" in v1["yaml"]
    assert client.get("/api/v1/workflows/hello/versions/2").status_code == 404


def test_status_follows_publish_pause_and_resume(client: TestClient) -> None:
    client.post("/api/v1/workflows", content=hello_yaml(), headers=YAML)
    refused = client.post("/api/v1/workflows/hello/resume")
    assert refused.status_code == 409
    assert "publish it first" in refused.json()["detail"]

    client.post("/api/v1/workflows/hello/publish")
    assert client.post("/api/v1/workflows/hello/pause").json()["status"] == "paused"
    # Publishing a paused workflow does not unpause it.
    client.put("/api/v1/workflows/hello?publish=true", content=hello_yaml(echo="2"), headers=YAML)
    assert client.get("/api/v1/workflows/hello").json()["status"] == "paused"
    assert client.post("/api/v1/workflows/hello/resume").json()["status"] == "active"


def test_create_refuses_an_existing_id_and_put_updates_it(client: TestClient) -> None:
    assert client.post("/api/v1/workflows", content=hello_yaml(), headers=YAML).status_code == 201
    again = client.post("/api/v1/workflows", content=hello_yaml(), headers=YAML)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert "PUT /api/v1/workflows/hello" in again.json()["detail"]


def test_json_definitions_are_accepted_like_yaml(client: TestClient) -> None:
    definition = {
        "id": "from-json",
        "labels": {"team": "ops"},
        "steps": [{"id": "a", "type": "script", "shell": "sh", "run": "true"}],
    }
    response = client.put("/api/v1/workflows/from-json", json=definition)
    assert response.status_code == 201, response.text
    detail = client.get("/api/v1/workflows/from-json").json()
    assert detail["labels"] == {"team": "ops"}
    assert "from-json" in detail["draft_yaml"]


def test_duplicate_starts_a_draft_without_versions(client: TestClient) -> None:
    client.put("/api/v1/workflows/hello?publish=true", content=hello_yaml(), headers=YAML)
    copy = client.post(
        "/api/v1/workflows/hello/duplicate", json={"new_id": "hello-copy", "name": "Copy"}
    )
    assert copy.status_code == 201, copy.text
    body = copy.json()
    assert (body["id"], body["name"], body["status"]) == ("hello-copy", "Copy", "draft")
    assert body["latest_version"] is None
    assert body["draft_yaml"].startswith("id: hello-copy\n")
    assert client.get("/api/v1/workflows/hello-copy/versions").json() == []
    taken = client.post("/api/v1/workflows/hello/duplicate", json={"new_id": "hello-copy"})
    assert taken.status_code == 409


def test_delete_hides_the_workflow_but_keeps_its_history(client: TestClient) -> None:
    client.put("/api/v1/workflows/hello?publish=true", content=hello_yaml(), headers=YAML)
    deleted = client.delete("/api/v1/workflows/hello")
    assert deleted.status_code == 200 and deleted.json()["deleted_at"] is not None

    assert client.get("/api/v1/workflows/hello").status_code == 404
    assert client.get("/api/v1/workflows").json()["total"] == 0
    listed = client.get("/api/v1/workflows?include_deleted=true").json()
    assert [w["id"] for w in listed["items"]] == ["hello"]
    assert client.get("/api/v1/workflows/hello?include_deleted=true").status_code == 200
    assert [v["number"] for v in client.get("/api/v1/workflows/hello/versions").json()] == [1]

    # Creating it again brings it back as a draft; numbering continues.
    assert (
        client.post("/api/v1/workflows", content=hello_yaml(echo="new"), headers=YAML).status_code
        == 201
    )
    assert client.get("/api/v1/workflows/hello").json()["status"] == "draft"
    assert client.post("/api/v1/workflows/hello/publish").json()["version"] == 2


def test_changes_are_audited(client: TestClient) -> None:
    client.put("/api/v1/workflows/hello?publish=true", content=hello_yaml(), headers=YAML)
    client.post("/api/v1/workflows/hello/pause")
    entries = client.get("/api/v1/audit?action=workflow.").json()["items"]
    assert [(e["actor"], e["action"], e["target"]) for e in entries] == [
        ("admin", "workflow.pause", "hello"),
        ("admin", "workflow.publish", "hello"),
        ("admin", "workflow.create", "hello"),
    ]


def test_restoring_a_version_makes_its_yaml_the_draft_with_its_comments(
    client: TestClient,
) -> None:
    first = "# version one, kept as written\n" + hello_yaml(echo="one")
    client.put("/api/v1/workflows/hello?publish=true", content=first, headers=YAML)
    client.put("/api/v1/workflows/hello?publish=true", content=hello_yaml(echo="two"), headers=YAML)
    v1 = client.get("/api/v1/workflows/hello/versions/1").json()
    assert v1["yaml"] == first

    restored = client.post("/api/v1/workflows/hello/versions/1/restore")
    assert restored.status_code == 200, restored.text
    body = restored.json()
    assert body["draft_yaml"] == first
    assert body["draft_definition"]["steps"][0]["run"] == "echo one"
    assert body["latest_version"] == 2 and body["has_unpublished_changes"] is True
    assert [v["number"] for v in client.get("/api/v1/workflows/hello/versions").json()] == [2, 1]

    published = client.post("/api/v1/workflows/hello/publish")
    assert published.status_code == 201 and published.json()["version"] == 3
    assert client.get("/api/v1/workflows/hello/versions/3").json()["yaml"] == first


def test_restoring_a_missing_version_is_a_404_naming_it(client: TestClient) -> None:
    client.put("/api/v1/workflows/hello?publish=true", content=hello_yaml(), headers=YAML)
    missing = client.post("/api/v1/workflows/hello/versions/7/restore")
    assert missing.status_code == 404
    assert "7" in missing.json()["detail"]
    bad = client.post("/api/v1/workflows/hello/versions/0/restore")
    assert bad.status_code == 422
    assert "number" in bad.text
    nobody = client.post("/api/v1/workflows/nope/versions/1/restore")
    assert nobody.status_code == 404
    assert client.get("/api/v1/workflows/hello").json()["has_unpublished_changes"] is False


def test_a_save_with_if_match_replaces_only_the_draft_it_names(client: TestClient) -> None:
    first = client.put("/api/v1/workflows/hello", content=hello_yaml(), headers=YAML)
    tag = first.json()["workflow"]["draft_tag"]
    # Someone else changes only a comment: the tag changes (the content digest does not).
    other = client.put("/api/v1/workflows/hello", content="# theirs\n" + hello_yaml(), headers=YAML)
    assert other.json()["workflow"]["draft_digest"] == first.json()["workflow"]["draft_digest"]
    assert other.json()["workflow"]["draft_tag"] != tag

    stale = client.put(
        "/api/v1/workflows/hello?publish=true",
        content=hello_yaml(echo="mine"),
        headers={**YAML, "If-Match": f'"{tag}"'},
    )
    assert stale.status_code == 412, stale.text
    assert stale.headers["content-type"] == "application/problem+json"
    assert "changed since you loaded it" in stale.json()["detail"]
    detail = client.get("/api/v1/workflows/hello").json()
    assert detail["draft_yaml"].startswith("# theirs") and detail["latest_version"] is None

    current = other.json()["workflow"]["draft_tag"]
    mine = client.put(
        "/api/v1/workflows/hello",
        content=hello_yaml(echo="mine"),
        headers={**YAML, "If-Match": f'W/"{current}"'},
    )
    assert mine.status_code == 200, mine.text
    assert "echo mine" in mine.json()["workflow"]["draft_yaml"]
    gone = client.put(
        "/api/v1/workflows/nobody",
        content=hello_yaml("nobody"),
        headers={**YAML, "If-Match": current},
    )
    assert gone.status_code == 412
    assert client.get("/api/v1/workflows/nobody").status_code == 404


UNTEMPLATED = """\
id: untemplated
params:
  whom: {type: string, default: world}
steps:
  - id: greet
    type: script
    run: echo "hi {{ params.whom }}"
  - id: remote
    type: ssh
    connection: hosts
    hosts: [web1]
    command: echo {{ params.whom }}
  - id: fine
    type: script
    env: {WHOM: "{{ params.whom }}"}
    run: echo "hi $WHOM"
"""


def test_markup_in_a_script_run_or_ssh_command_is_a_located_warning(client: TestClient) -> None:
    # Those bodies are never templated (values go through env), so {{ }} reaches the shell as
    # written: valid, but validate, save and publish say so at the field's line.
    checked = client.post("/api/v1/workflows/validate", content=UNTEMPLATED, headers=YAML)
    assert checked.status_code == 200, checked.text
    found = [w for w in checked.json()["warnings"] if "not templated" in w["msg"]]
    assert [(w["loc"], w["line"]) for w in found] == [("steps[0].run", 7), ("steps[1].command", 12)]
    assert found[0]["msg"] == (
        "run is not templated: {{ … }} stays as written; pass values through env: "
        '(e.g. env: {WHOM: "{{ params.whom }}"} and use $WHOM)'
    )
    assert found[1]["msg"].startswith("command is not templated: {{ … }} stays as written")
    saved = client.post("/api/v1/workflows?publish=true", content=UNTEMPLATED, headers=YAML)
    assert saved.status_code == 201, saved.text
    assert [w for w in saved.json()["warnings"] if "not templated" in w["msg"]] == found
    published = client.post("/api/v1/workflows/untemplated/publish")
    assert [w for w in published.json()["warnings"] if "not templated" in w["msg"]] == found
