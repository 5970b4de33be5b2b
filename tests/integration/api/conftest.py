"""An opsflow app per test on each backend, with an admin client and helpers for other roles."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from opsflow.api.app import create_app
from opsflow.config import Settings

ADMIN_PASSWORD = "correct-horse-battery"
MAX_BUNDLE_BYTES = 64 * 1024


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings.from_env(
        env={},
        data_dir=tmp_path / "data",
        db_url=db_url,
        admin_password=ADMIN_PASSWORD,
        max_bundle_bytes=MAX_BUNDLE_BYTES,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A client of the real app (lifespan run: migrate, bootstrap), as the bootstrap admin."""
    with TestClient(create_app(settings, extensions=[])) as c:
        token = (settings.data_dir / "admin-token").read_text().strip()
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def token_for(client: TestClient) -> Callable[[str], str]:
    """A token of a new user with the given role (user name = role)."""

    def make(role: str) -> str:
        created = client.post("/api/v1/users", json={"name": role, "role": role})
        assert created.status_code in (201, 409), created.text
        response = client.post("/api/v1/tokens", json={"user": role, "name": "test"})
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    return make


def hello_yaml(workflow_id: str = "hello", *, echo: str = "hi", labels: str = "") -> str:
    """A small valid definition; ``echo`` varies the content, ``labels`` adds a labels block."""
    return (
        f"id: {workflow_id}\n"
        f"name: Hello {workflow_id}\n"
        "description: Says something.\n"
        f"{labels}"
        "steps:\n"
        "  - id: say\n"
        "    type: script\n"
        "    shell: sh\n"
        f"    run: echo {echo}\n"
    )


YAML = {"Content-Type": "application/yaml"}
