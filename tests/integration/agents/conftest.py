"""Real ``opsflow server`` processes for the agent tests: no local agent, short leases."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.servers import RunningServer, clean_env, fresh_database, run_server

LEASE = 2.0
HEARTBEAT = 0.5


@pytest.fixture(params=BACKENDS)
def agent_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh migrated database of each backend, for a server process."""
    yield from fresh_database(request, tmp_path_factory, "agents")


def server_env() -> dict[str, str]:
    return {
        **clean_env(),
        "OPSFLOW_ADMIN_PASSWORD": "admin-pw-for-tests",
        "OPSFLOW_LEASE_SECONDS": str(LEASE),
        "OPSFLOW_HEARTBEAT_SECONDS": str(HEARTBEAT),
    }


@pytest.fixture
def server(agent_db: str, tmp_path: Path) -> Iterator[RunningServer]:
    """A server that runs no job itself: only agents do."""
    data = tmp_path / "server"
    data.mkdir()
    with run_server(agent_db, data, "--no-local-agent", env=server_env()) as running:
        yield running


class Api:
    """The API calls the agent tests make."""

    def __init__(self, url: str, token: str) -> None:
        self.client = httpx.Client(
            base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def publish(self, workflow_id: str, yaml_text: str) -> None:
        res = self.client.put(
            f"/workflows/{workflow_id}",
            params={"publish": "true"},
            content=yaml_text,
            headers={"Content-Type": "application/yaml"},
        )
        assert res.status_code in (200, 201), res.text

    def run(self, workflow_id: str) -> str:
        res = self.client.post(f"/workflows/{workflow_id}/runs", json={"params": {}})
        assert res.status_code == 201, res.text
        execution_id: str = res.json()["id"]
        return execution_id

    def execution(self, execution_id: str) -> dict[str, Any]:
        res = self.client.get(f"/executions/{execution_id}")
        assert res.status_code == 200, res.text
        detail: dict[str, Any] = res.json()
        return detail

    def log_texts(self, execution_id: str) -> list[str]:
        res = self.client.get(f"/executions/{execution_id}/logs", params={"limit": 10000})
        assert res.status_code == 200, res.text
        return [line["text"] for line in res.json()["items"]]

    def wait_for(self, what: str, check: Callable[[], bool], *, timeout: float) -> None:
        """Poll the API (the only event a separate process offers) until ``check`` holds."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not within {timeout}s")
            time.sleep(0.05)


@pytest.fixture
def api(server: RunningServer) -> Iterator[Api]:
    client = Api(server.url, server.token)
    yield client
    client.client.close()
