"""An opsflow app per test on each backend, with a fixed secret key in its data dir."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from opsflow.api.app import create_app
from opsflow.auth.secrets import KEY_ENV, SecretBox, SecretVault, load_master_key
from opsflow.config import Settings
from opsflow.store.db import Database

ADMIN_PASSWORD = "correct-horse-battery"


@pytest.fixture
def settings(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    # The server reads OPSFLOW_SECRET_KEY from its environment; a developer's own must not leak
    # in, so the key is the one generated into this test's data dir.
    monkeypatch.delenv(KEY_ENV, raising=False)
    return Settings.from_env(
        env={}, data_dir=tmp_path / "data", db_url=db_url, admin_password=ADMIN_PASSWORD
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A client of the real app (lifespan run: key, migrate, bootstrap), as the admin."""
    with TestClient(create_app(settings, extensions=[])) as c:
        token = (settings.data_dir / "admin-token").read_text().strip()
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


@pytest.fixture
def vault_with_key(settings: Settings, database: Database) -> Callable[..., SecretVault]:
    """A vault on the test's database (the root ``database`` fixture), with the server's key
    (no argument) or another one."""

    def make(key: bytes | None = None) -> SecretVault:
        return SecretVault(database, SecretBox(key or load_master_key(settings.data_dir, {})))

    return make


@pytest.fixture
def token_for(client: TestClient) -> Callable[[str], str]:
    """A token of a new user with the given role (user name = role)."""

    def make(role: str) -> str:
        created = client.post("/api/v1/users", json={"name": role, "role": role})
        assert created.status_code == 201, created.text
        response = client.post("/api/v1/tokens", json={"user": role, "name": "test"})
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    return make
