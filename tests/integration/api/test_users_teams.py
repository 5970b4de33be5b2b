"""Users and teams through the API."""

from __future__ import annotations

import base64

from fastapi.testclient import TestClient


def test_users_are_created_changed_and_removed(client: TestClient) -> None:
    created = client.post(
        "/api/v1/users",
        json={"name": "ana", "role": "operator", "password": "s3cret-pass", "email": "a@x.org"},
    )
    assert created.status_code == 201
    assert created.json()["role"] == "operator" and created.json()["has_password"] is True
    assert "s3cret-pass" not in created.text and "argon2" not in created.text
    assert client.post("/api/v1/users", json={"name": "ana"}).status_code == 409

    changed = client.patch("/api/v1/users/ana", json={"role": "editor", "password": "new-pass-1"})
    assert changed.json()["role"] == "editor"
    basic = base64.b64encode(b"ana:new-pass-1").decode()
    me = client.get("/api/v1/me", headers={"Authorization": f"Basic {basic}"}).json()
    assert me["name"] == "ana" and "workflows:update" in me["permissions"]

    assert client.delete("/api/v1/users/ana").status_code == 204
    assert client.get("/api/v1/users/ana").status_code == 404
    actions = [e["action"] for e in client.get("/api/v1/audit?target=ana").json()["items"]]
    assert actions == ["user.delete", "user.update", "user.create"]


def test_bad_user_input_names_the_field(client: TestClient) -> None:
    bad_name = client.post("/api/v1/users", json={"name": "Not Valid"})
    assert bad_name.status_code == 422 and bad_name.json()["errors"][0]["loc"] == "body.name"
    short = client.post("/api/v1/users", json={"name": "bob", "password": "short"})
    assert short.status_code == 422 and "at least 8 characters" in short.json()["detail"]
    role = client.post("/api/v1/users", json={"name": "bob", "role": "superuser"})
    assert role.status_code == 422 and role.json()["errors"][0]["loc"] == "body.role"


def test_the_last_admin_cannot_be_demoted_or_removed(client: TestClient) -> None:
    demote = client.patch("/api/v1/users/admin", json={"role": "viewer"})
    assert demote.status_code == 409 and "last active admin" in demote.json()["detail"]
    assert client.delete("/api/v1/users/admin").status_code == 409


def test_teams_hold_members(client: TestClient) -> None:
    client.post("/api/v1/users", json={"name": "ana"})
    client.post("/api/v1/users", json={"name": "ben"})
    team = client.post("/api/v1/teams", json={"name": "platform", "members": ["ana"]})
    assert team.status_code == 201 and team.json()["members"] == ["ana"]
    added = client.put("/api/v1/teams/platform/members/ben").json()
    assert added["changed"] is True
    assert client.put("/api/v1/teams/platform/members/ben").json()["changed"] is False
    assert client.get("/api/v1/users/ben").json()["teams"] == ["platform"]
    assert client.delete("/api/v1/teams/platform/members/ana").status_code == 200
    assert client.delete("/api/v1/teams/platform/members/ana").status_code == 404
    listed = client.get("/api/v1/teams").json()
    assert [(t["name"], t["members"]) for t in listed] == [("platform", ["ben"])]
    assert client.put("/api/v1/teams/platform/members/nobody").status_code == 404
