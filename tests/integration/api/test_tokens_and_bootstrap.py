"""Tokens are hashed at rest and shown once; the first start leaves 0600 credential files."""

from __future__ import annotations

import stat
from pathlib import Path

from fastapi.testclient import TestClient

from opsflow.api.app import create_app
from opsflow.config import Settings
from opsflow.store.db import Database
from opsflow.store.health import ping
from tests.integration.api.conftest import auth


def _dump_database(settings: Settings) -> str:
    """Every token-table value, as text: what an attacker with a DB copy would see."""
    from sqlalchemy import text  # the test inspects raw storage on purpose

    db = Database(settings.db_url)
    try:
        with db.engine.connect() as connection:
            rows = connection.execute(text("SELECT * FROM api_tokens")).all()
    finally:
        db.dispose()
    return repr(rows)


def test_token_secrets_are_never_stored_and_shown_only_once(
    client: TestClient, settings: Settings
) -> None:
    created = client.post("/api/v1/tokens", json={"name": "ci", "expires_in": "30d"})
    assert created.status_code == 201
    secret = created.json()["token"]
    assert secret.startswith("opf_") and len(secret) > 40
    admin_secret = (settings.data_dir / "admin-token").read_text().strip()

    stored = _dump_database(settings)
    assert secret not in stored and admin_secret not in stored
    assert secret[:12] in stored  # the display prefix, so people can tell tokens apart

    listed = client.get("/api/v1/tokens").json()
    assert secret not in repr(listed)
    ci = next(t for t in listed if t["name"] == "ci")
    assert ci["prefix"] == secret[:12] and ci["active"] is True and ci["expires_at"]


def test_token_lifetimes_are_checked(client: TestClient) -> None:
    bad = client.post("/api/v1/tokens", json={"expires_in": "forever"})
    assert bad.status_code == 422 and "expires_in" in bad.json()["detail"]
    past = client.post("/api/v1/tokens", json={"expires_at": "2001-01-01T00:00:00Z"})
    assert past.status_code == 422 and "in the past" in past.json()["detail"]


def test_first_start_writes_password_and_token_files_with_mode_0600(
    db_url: str, tmp_path: Path
) -> None:
    settings = Settings.from_env(env={}, data_dir=tmp_path / "data", db_url=db_url)
    with TestClient(create_app(settings, extensions=[])) as client:
        password_file = settings.data_dir / "admin-password"
        token_file = settings.data_dir / "admin-token"
        for path in (password_file, token_file):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        password = password_file.read_text().strip()
        login = client.post("/api/v1/auth/login", json={"username": "admin", "password": password})
        assert login.status_code == 200
        token = token_file.read_text().strip()
        me = client.get("/api/v1/me", headers=auth(token)).json()
        assert me["name"] == "admin"
        client.delete(f"/api/v1/tokens/{me['token_id']}", headers=auth(token))

    # A restart keeps the password and replaces the token file, whose token was revoked.
    with TestClient(create_app(settings, extensions=[])) as client:
        assert (settings.data_dir / "admin-password").read_text().strip() == password
        fresh = (settings.data_dir / "admin-token").read_text().strip()
        assert fresh != token
        assert client.get("/api/v1/me", headers=auth(fresh)).status_code == 200


def test_health_and_readiness(client: TestClient, settings: Settings) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ok"
    assert ping(Database("postgresql://postgres@127.0.0.1:1/nowhere")) is not None


def test_openapi_documents_every_route_with_response_models(client: TestClient) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    paths = spec["paths"]
    assert "/api/v1/workflows/{workflow_id}/versions/{number}" in paths
    put = paths["/api/v1/workflows/{workflow_id}"]["put"]
    assert set(put["requestBody"]["content"]) == {
        "application/yaml",
        "application/json",
        "multipart/form-data",
    }
    assert "application/problem+json" in put["responses"]["422"]["content"]
    assert "WorkflowDetail" in spec["components"]["schemas"]
    assert set(spec["components"]["securitySchemes"]) == {"token", "password"}


def test_the_workflow_schema_is_published(client: TestClient) -> None:
    schema = client.get("/api/v1/schema/workflow").json()
    assert "steps" in schema["properties"]


def test_a_fresh_data_dir_gets_the_default_sqlite_database(tmp_path: Path) -> None:
    settings = Settings.from_env(env={}, data_dir=tmp_path / "new" / "data")
    with TestClient(create_app(settings, extensions=[])) as client:
        token = (settings.data_dir / "admin-token").read_text().strip()
        assert client.get("/api/v1/workflows", headers=auth(token)).json()["total"] == 0
    assert (settings.data_dir / "opsflow.db").is_file()
