"""An opsflow app with its runtime (no local agent: runs stay queued, which is all a trigger
test needs to see) on each backend, and the admin's client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from opsflow.api.app import create_app
from opsflow.config import Settings
from opsflow.store.db import Database

YAML = {"Content-Type": "application/yaml"}


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings.from_env(
        env={},
        data_dir=tmp_path / "data",
        db_url=db_url,
        admin_password="correct-horse-battery",
        local_agent=False,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        token = (settings.data_dir / "admin-token").read_text().strip()
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    yield db
    db.dispose()
