"""Listing workflows: filters by status, label and text, and pagination."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.integration.api.conftest import YAML, hello_yaml


def _ids(client: TestClient, query: str) -> list[str]:
    response = client.get(f"/api/v1/workflows?{query}")
    assert response.status_code == 200, response.text
    return [w["id"] for w in response.json()["items"]]


def _create(client: TestClient, workflow_id: str, labels: str = "", publish: bool = False) -> None:
    response = client.put(
        f"/api/v1/workflows/{workflow_id}?publish={str(publish).lower()}",
        content=hello_yaml(workflow_id, labels=labels),
        headers=YAML,
    )
    assert response.status_code == 201, response.text


def test_filters_by_status_label_and_text(client: TestClient) -> None:
    _create(client, "deploy-api", "labels: {team: platform, env: prod}\n", publish=True)
    _create(client, "deploy-web", "labels: {team: web, env: prod}\n", publish=True)
    _create(client, "backup-db", "labels: {team: platform}\n")
    client.post("/api/v1/workflows/deploy-web/pause")

    assert _ids(client, "status=draft") == ["backup-db"]
    assert _ids(client, "status=active") == ["deploy-api"]
    assert _ids(client, "status=paused") == ["deploy-web"]
    assert _ids(client, "label=team=platform") == ["backup-db", "deploy-api"]
    assert _ids(client, "label=team=platform&label=env=prod") == ["deploy-api"]
    assert _ids(client, "q=DEPLOY") == ["deploy-api", "deploy-web"]
    assert _ids(client, "q=hello%20backup") == ["backup-db"]  # the name is "Hello backup-db"
    assert _ids(client, "q=100%25") == []  # % is a literal, not a wildcard
    bad = client.get("/api/v1/workflows?label=team")
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == "query.label[0]"


def test_pagination_reports_the_total(client: TestClient) -> None:
    for n in range(5):
        _create(client, f"wf-{n}")
    first = client.get("/api/v1/workflows?limit=2").json()
    assert [w["id"] for w in first["items"]] == ["wf-0", "wf-1"]
    assert (first["total"], first["limit"], first["offset"]) == (5, 2, 0)
    last = client.get("/api/v1/workflows?limit=2&offset=4").json()
    assert [w["id"] for w in last["items"]] == ["wf-4"] and last["total"] == 5
