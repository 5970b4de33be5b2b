"""``PATCH /me``: a signed-in user changes their own password, proven by the current one; the
log-in tokens and browser sessions opened with the old password end, API tokens stay."""

from __future__ import annotations

from fastapi.testclient import TestClient

from opsflow.api.app import create_app
from opsflow.config import Settings
from tests.integration.api.conftest import auth


def _login(client: TestClient, password: str) -> str:
    response = client.post("/api/v1/auth/login", json={"username": "olga", "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def test_changing_your_password_ends_what_the_old_one_opened(
    client: TestClient, settings: Settings
) -> None:
    created = client.post(
        "/api/v1/users", json={"name": "olga", "role": "operator", "password": "old-pass-123"}
    )
    assert created.status_code == 201, created.text
    used, other = _login(client, "old-pass-123"), _login(client, "old-pass-123")
    api_token = client.post("/api/v1/tokens", json={"name": "ci"}, headers=auth(used))
    assert api_token.status_code == 201, api_token.text
    with TestClient(create_app(settings, extensions=[])) as browser:
        opened = browser.post(
            "/api/v1/auth/login",
            json={"username": "olga", "password": "old-pass-123", "session": True},
        )
        assert opened.status_code == 200, opened.text
        assert browser.get("/api/v1/me").status_code == 200

        wrong = client.patch(
            "/api/v1/me",
            json={"current_password": "guess-1234", "password": "new-pass-456"},
            headers=auth(used),
        )
        short = client.patch(
            "/api/v1/me",
            json={"current_password": "old-pass-123", "password": "short"},
            headers=auth(used),
        )
        changed = client.patch(
            "/api/v1/me",
            json={"current_password": "old-pass-123", "password": "new-pass-456"},
            headers=auth(used),
        )

        assert wrong.status_code == 422
        assert [e["loc"] for e in wrong.json()["errors"]] == ["body.current_password"]
        assert short.status_code == 422 and "at least 8" in short.json()["detail"]
        assert changed.status_code == 200, changed.text
        assert changed.json() == {"user": "olga", "sessions_ended": 1, "login_tokens_revoked": 1}
        assert browser.get("/api/v1/me").status_code == 401
    me = "/api/v1/me"
    assert client.get(me, headers=auth(used)).status_code == 200
    assert client.get(me, headers=auth(api_token.json()["token"])).status_code == 200
    refused = client.get(me, headers=auth(other))
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    assert client.get(me, auth=("olga", "old-pass-123")).status_code == 401
    assert client.get(me, auth=("olga", "new-pass-456")).status_code == 200
    audit = client.get("/api/v1/audit", params={"action": "user.password"}).json()["items"]
    assert [(a["actor"], a["target"]) for a in audit] == [("olga", "olga")]


def test_a_token_only_user_is_told_who_sets_a_first_password(client: TestClient) -> None:
    assert client.post("/api/v1/users", json={"name": "bot", "role": "viewer"}).status_code == 201
    token = client.post("/api/v1/tokens", json={"user": "bot", "name": "t"}).json()["token"]
    response = client.patch(
        "/api/v1/me",
        json={"current_password": "anything-1", "password": "new-pass-456"},
        headers=auth(token),
    )
    assert response.status_code == 409
    assert "PATCH /api/v1/users/bot" in response.json()["detail"]
