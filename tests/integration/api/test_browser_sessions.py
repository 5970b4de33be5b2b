"""Logging in from a browser: a server-side session in an HttpOnly cookie, a CSRF token that
every change made with the cookie must carry, expiry, logout; bearer tokens unaffected."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from opsflow.api.services import Services
from opsflow.auth.permissions import ROLE_PERMISSIONS, Role
from opsflow.store import tables as t
from opsflow.store.base import utcnow
from tests.integration.api.conftest import ADMIN_PASSWORD, YAML, hello_yaml

PASSWORD = "a-long-enough-password"


def browser_of(client: TestClient, base_url: str = "http://testserver") -> TestClient:
    """A second client of the same running app, with no Authorization header: a browser."""
    return TestClient(client.app, base_url=base_url)


def log_in(browser: TestClient, name: str = "admin", password: str = ADMIN_PASSWORD) -> str:
    """Log in with a session; returns the CSRF token."""
    response = browser.post(
        "/api/v1/auth/login", json={"username": name, "password": password, "session": True}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token"] is None and body["token_id"] is None
    token: str = body["csrf_token"]
    return token


def set_cookies(response_headers: list[str]) -> dict[str, str]:
    """Set-Cookie header lines by cookie name."""
    return {line.split("=", 1)[0]: line for line in response_headers}


@pytest.fixture
def browser(client: TestClient) -> Iterator[TestClient]:
    yield browser_of(client)


def test_session_login_sets_an_httponly_lax_cookie_and_a_readable_csrf_cookie(
    browser: TestClient,
) -> None:
    response = browser.post(
        "/api/v1/auth/login",
        json={"username": "admin", "password": ADMIN_PASSWORD, "session": True},
    )
    assert response.status_code == 200, response.text
    cookies = set_cookies(response.headers.get_list("set-cookie"))
    session, csrf = cookies["opsflow_session"].lower(), cookies["opsflow_csrf"].lower()
    assert "httponly" in session and "samesite=lax" in session and "path=/" in session
    assert "max-age=43200" in session, "OPSFLOW_SESSION_SECONDS' default, 12 h"
    assert "secure" not in session, "plain HTTP: a Secure cookie would never come back"
    assert "httponly" not in csrf and "samesite=lax" in csrf
    assert response.json()["csrf_token"] == browser.cookies["opsflow_csrf"]

    me = browser.get("/api/v1/me")
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["name"] == "admin" and body["token_id"] is None
    assert body["csrf_token"] == response.json()["csrf_token"]
    assert body["session_expires_at"] == response.json()["expires_at"]


def test_over_https_the_cookies_are_secure(client: TestClient) -> None:
    browser = browser_of(client, base_url="https://testserver")
    response = browser.post(
        "/api/v1/auth/login",
        json={"username": "admin", "password": ADMIN_PASSWORD, "session": True},
    )
    cookies = set_cookies(response.headers.get_list("set-cookie"))
    assert "; secure" in cookies["opsflow_session"].lower()
    assert "; secure" in cookies["opsflow_csrf"].lower()


def test_a_change_made_with_the_cookie_needs_the_csrf_token(browser: TestClient) -> None:
    csrf = log_in(browser)
    missing = browser.put("/api/v1/workflows/hello", content=hello_yaml(), headers=YAML)
    assert missing.status_code == 403
    assert missing.headers["content-type"] == "application/problem+json"
    problem = missing.json()
    assert problem["type"] == "urn:opsflow:problem:csrf"
    assert problem["title"] == "Cross-site request refused"
    assert "X-CSRF-Token" in problem["detail"] and "opsflow_csrf" in problem["detail"]
    wrong = browser.put(
        "/api/v1/workflows/hello", content=hello_yaml(), headers={**YAML, "X-CSRF-Token": "x"}
    )
    assert wrong.status_code == 403 and "does not match" in wrong.json()["detail"]
    assert browser.get("/api/v1/workflows/hello").status_code == 404, "nothing was written"
    made = browser.put(
        "/api/v1/workflows/hello", content=hello_yaml(), headers={**YAML, "X-CSRF-Token": csrf}
    )
    assert made.status_code == 201, made.text
    assert browser.get("/api/v1/workflows/hello").status_code == 200, "reads need no token"


def test_bearer_tokens_need_no_csrf_token_even_beside_a_session_cookie(
    client: TestClient, browser: TestClient
) -> None:
    log_in(browser)
    bearer = client.headers["Authorization"]
    response = browser.put(
        "/api/v1/workflows/hello", content=hello_yaml(), headers={**YAML, "Authorization": bearer}
    )
    assert response.status_code == 201, response.text
    assert client.post("/api/v1/workflows/hello/publish").status_code == 201


def test_an_expired_session_must_log_in_again(client: TestClient, browser: TestClient) -> None:
    log_in(browser)
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    with services.session() as session:
        session.execute(update(t.BrowserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    response = browser.get("/api/v1/me")
    assert response.status_code == 401
    assert "your session expired at" in response.json()["detail"]
    assert "log in again" in response.json()["detail"]


def test_logout_ends_the_session_and_clears_the_cookies(
    client: TestClient, browser: TestClient
) -> None:
    csrf = log_in(browser)
    cookie = browser.cookies["opsflow_session"]
    assert browser.post("/api/v1/auth/logout").status_code == 403, "logout needs the token too"
    out = browser.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert out.status_code == 204
    cleared = set_cookies(out.headers.get_list("set-cookie"))
    assert "max-age=0" in cleared["opsflow_session"].lower()
    assert "max-age=0" in cleared["opsflow_csrf"].lower()
    again = browser_of(client)
    again.cookies.set("opsflow_session", cookie)
    refused = again.get("/api/v1/me")
    assert refused.status_code == 401 and "log in again" in refused.json()["detail"]
    assert again.post("/api/v1/auth/logout").status_code == 204, "an ended session logs out"
    actions = [e["action"] for e in client.get("/api/v1/audit").json()["items"]]
    assert "auth.logout" in actions and "auth.login" in actions


def test_me_tells_a_viewer_what_it_may_do(client: TestClient, browser: TestClient) -> None:
    created = client.post(
        "/api/v1/users", json={"name": "vera", "role": "viewer", "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    client.put("/api/v1/workflows/hello?publish=true", content=hello_yaml(), headers=YAML)
    csrf = log_in(browser, "vera", PASSWORD)
    me = browser.get("/api/v1/me").json()
    assert me["role"] == "viewer"
    assert me["permissions"] == sorted(ROLE_PERMISSIONS[Role.VIEWER])
    assert "workflows:run" not in me["permissions"]
    run = browser.post("/api/v1/workflows/hello/runs", json={}, headers={"X-CSRF-Token": csrf})
    assert run.status_code == 403, "the server enforces what /me tells the UI to hide"
    assert run.json()["detail"] == "requires permission workflows:run; your role is viewer"


def test_a_cross_site_form_cannot_log_a_browser_in(browser: TestClient) -> None:
    """Login CSRF: a form posts text/plain or urlencoded bodies, never JSON (that needs CORS)."""
    body = f'{{"username": "admin", "password": "{ADMIN_PASSWORD}", "session": true}}'
    for content_type in ["text/plain", "application/x-www-form-urlencoded"]:
        response = browser.post(
            "/api/v1/auth/login", content=body, headers={"Content-Type": content_type}
        )
        assert response.status_code == 422, (content_type, response.text)
        assert "set-cookie" not in response.headers


def test_a_session_has_the_servers_lifetime_not_a_requested_one(browser: TestClient) -> None:
    response = browser.post(
        "/api/v1/auth/login",
        json={"username": "admin", "password": ADMIN_PASSWORD, "session": True, "expires_in": "9y"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == "body.expires_in"
    assert "set-cookie" not in response.headers
