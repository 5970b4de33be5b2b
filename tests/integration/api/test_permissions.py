"""Every route declares its permission; each role gets 403 (with the reason) outside its grant,
and 401 says what is wrong with the credentials."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from httpx2 import Response

from opsflow.api.app import create_app
from opsflow.auth.credentials import issue_token
from opsflow.config import Settings
from opsflow.store.db import Database
from tests.integration.api.conftest import ADMIN_PASSWORD, YAML, auth, hello_yaml

# (method, path, body) of one request per permission a role may lack.
EDIT = ("PUT", "/api/v1/workflows/hello", hello_yaml())
USERS = ("GET", "/api/v1/users", None)
AUDIT = ("GET", "/api/v1/audit", None)
OTHERS_TOKENS = ("GET", "/api/v1/tokens?user=admin", None)


def _send(client: TestClient, token: str, request: tuple[str, str, str | None]) -> Response:
    method, path, body = request
    return client.request(method, path, content=body, headers={**auth(token), **YAML})


def test_every_api_route_declares_a_permission(settings: Settings) -> None:
    app = create_app(settings, extensions=[])
    unguarded = []
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.path.startswith("/api/v1"):
            continue
        if route.path == "/api/v1/auth/login":
            continue
        calls = [d.call for d in route.dependant.dependencies]
        if not any(hasattr(call, "permission") for call in calls):
            unguarded.append(route.path)
    assert unguarded == []


def test_each_role_gets_403_naming_the_permission_outside_its_grant(
    client: TestClient, token_for: Callable[[str], str]
) -> None:
    client.put("/api/v1/workflows/hello", content=hello_yaml(), headers=YAML)
    viewer, operator, editor = token_for("viewer"), token_for("operator"), token_for("editor")
    assert client.get("/api/v1/workflows", headers=auth(viewer)).status_code == 200
    assert client.get("/api/v1/workflows/hello", headers=auth(viewer)).status_code == 200
    refused: dict[str, list[tuple[str, str, str | None]]] = {
        viewer: [EDIT, USERS, AUDIT, OTHERS_TOKENS],
        operator: [EDIT, USERS, AUDIT, OTHERS_TOKENS],
        editor: [USERS, AUDIT, OTHERS_TOKENS],
    }
    names = {viewer: "viewer", operator: "operator", editor: "editor"}
    for token, requests in refused.items():
        for request in requests:
            response = _send(client, token, request)
            assert response.status_code == 403, (names[token], request)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["detail"].endswith(f"your role is {names[token]}")
    assert _send(client, viewer, EDIT).json()["detail"] == (
        "requires permission workflows:update; your role is viewer"
    )
    assert _send(client, operator, USERS).json()["detail"] == (
        "requires permission users:manage; your role is operator"
    )
    assert _send(client, editor, AUDIT).json()["detail"] == (
        "requires permission audit:read; your role is editor"
    )
    assert _send(client, editor, EDIT).status_code == 200


def test_every_role_manages_its_own_tokens(
    client: TestClient, token_for: Callable[[str], str]
) -> None:
    viewer = token_for("viewer")
    mine = client.post("/api/v1/tokens", json={"name": "laptop"}, headers=auth(viewer))
    assert mine.status_code == 201 and mine.json()["user"] == "viewer"
    listed = client.get("/api/v1/tokens", headers=auth(viewer)).json()
    assert {t["name"] for t in listed} == {"test", "laptop"}
    for_admin = client.post("/api/v1/tokens", json={"user": "admin"}, headers=auth(viewer))
    assert for_admin.status_code == 403


def test_401_says_what_is_wrong_with_the_credentials(
    client: TestClient, settings: Settings, token_for: Callable[[str], str]
) -> None:
    missing = client.get("/api/v1/workflows", headers={"Authorization": ""})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "no credentials" in missing.json()["detail"]

    garbled = client.get("/api/v1/me", headers={"Authorization": "Basic !!!"})
    assert garbled.status_code == 401 and "malformed Basic" in garbled.json()["detail"]

    unknown = client.get("/api/v1/workflows", headers=auth("opf_not-a-real-token"))
    assert unknown.status_code == 401 and unknown.json()["detail"].startswith("invalid token")

    created = client.post("/api/v1/tokens", json={"name": "short"}).json()
    assert client.get("/api/v1/me", headers=auth(created["token"])).status_code == 200
    assert client.delete(f"/api/v1/tokens/{created['id']}").json()["revoked_at"] is not None
    revoked = client.get("/api/v1/me", headers=auth(created["token"]))
    assert revoked.status_code == 401 and "was revoked" in revoked.json()["detail"]

    # The API refuses to create an already expired token, so make one in the store.
    db = Database(settings.db_url)
    try:
        with db.session() as session:
            past = datetime.now(UTC) - timedelta(seconds=1)
            _, secret = issue_token(session, "admin", "old", past)
    finally:
        db.dispose()
    expired = client.get("/api/v1/me", headers=auth(secret))
    assert expired.status_code == 401 and "expired at" in expired.json()["detail"]

    viewer = token_for("viewer")
    client.patch("/api/v1/users/viewer", json={"active": False})
    deactivated = client.get("/api/v1/me", headers=auth(viewer))
    assert deactivated.status_code == 401 and "deactivated" in deactivated.json()["detail"]


def test_basic_auth_and_login_accept_the_password(client: TestClient) -> None:
    basic = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    me = client.get("/api/v1/me", headers={"Authorization": f"Basic {basic}"})
    assert me.status_code == 200 and me.json()["role"] == "admin"
    assert "users:manage" in me.json()["permissions"]

    wrong = base64.b64encode(b"admin:nope").decode()
    refused = client.get("/api/v1/me", headers={"Authorization": f"Basic {wrong}"})
    assert refused.status_code == 401 and refused.json()["detail"] == "wrong user name or password"

    login = client.post(
        "/api/v1/auth/login",
        json={"username": "admin", "password": ADMIN_PASSWORD},
        headers={"Authorization": ""},
    )
    assert login.status_code == 200
    assert login.json()["token"].startswith("opf_") and login.json()["expires_at"] is not None
    assert client.get("/api/v1/me", headers=auth(login.json()["token"])).status_code == 200
    bad = client.post("/api/v1/auth/login", json={"username": "admin", "password": "x"})
    assert bad.status_code == 401
