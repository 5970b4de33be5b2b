"""An opsflow app with its runtime (no local agent: runs stay queued, which is all a trigger
test needs to see) on each backend, and the admin's client."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from opsflow.api.app import create_app
from opsflow.config import Settings
from opsflow.store.db import Database
from tests.conftest import BACKENDS
from tests.servers import clean_env, fresh_database, run_server

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


# -- one real server per backend for the git and incident trigger modules -------------------

GIT_SECRET = "git-hook-secret-for-tests-0123"
AM_SECRET = "alertmanager-token-for-tests-42"


@dataclass(frozen=True)
class TriggerServer:
    """A real ``opsflow server`` whose trigger clock runs 10 times as fast (so a git trigger's
    ``poll: 10s`` polls every real second), with the opsflow secrets GIT_SECRET and AM_TOKEN
    set, and the admin's API client."""

    url: str
    db_url: str
    api: httpx.Client


@pytest.fixture(scope="package", params=BACKENDS)
def trigger_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TriggerServer]:
    databases = fresh_database(request, tmp_path_factory, "sources")
    db_url = next(databases)
    env = {
        **clean_env(),
        "OPSFLOW_ADMIN_PASSWORD": "admin-pw-for-tests",
        "OPSFLOW_SCHEDULER_CLOCK": f"{datetime.now(UTC).isoformat()},10",
    }
    try:
        with run_server(db_url, tmp_path_factory.mktemp("sources-data"), env=env) as running:
            headers = {"Authorization": f"Bearer {running.token}"}
            with httpx.Client(base_url=f"{running.url}/api/v1", headers=headers, timeout=30) as api:
                for name, value in (("GIT_SECRET", GIT_SECRET), ("AM_TOKEN", AM_SECRET)):
                    put = api.put(f"/secrets/{name}", json={"value": value})
                    assert put.status_code == 201, put.text
                yield TriggerServer(running.url, db_url, api)
    finally:
        databases.close()
