"""One real opsflow app per backend, with its runtime and local agent running.

Starting and stopping an app (migrate, bootstrap, runtime, agent) costs one to three seconds,
so every API test of this package shares one app per backend (SQLite and PostgreSQL) and the
tests stay apart by using their own workflow ids. Every wait listens to the execution's
server-sent events (the stream the CLI and the UI follow) until it says ``end``; nothing
sleeps for a fixed time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from fastapi.testclient import TestClient

from opsflow.api.app import create_app
from opsflow.cli.bundle import pack_bundle
from opsflow.config import Settings
from tests.conftest import BACKENDS
from tests.servers import fresh_database

# Every test here runs real processes; a stuck stream fails fast instead of at the global limit.
TEST_TIMEOUT = 30
YAML = {"Content-Type": "application/yaml"}


@pytest.fixture(scope="package", params=BACKENDS)
def package_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The database of the package's shared app, on each backend."""
    yield from fresh_database(request, tmp_path_factory, "ex")


@dataclass(frozen=True)
class Event:
    """One server-sent event as a client reads it."""

    id: str
    kind: str
    data: dict[str, Any]


def sse_events(response: httpx.Response | httpx2.Response) -> Iterator[Event]:
    """Parse a ``text/event-stream`` body event by event, as it arrives."""
    kind, data, event_id = "message", "", ""
    for line in response.iter_lines():
        if line == "":
            if data:
                yield Event(event_id, kind, json.loads(data))
            kind, data, event_id = "message", "", ""
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                kind = value
            elif field == "data":
                data = f"{data}\n{value}" if data else value
            elif field == "id":
                event_id = value


class Api:
    """The admin's client of one running app, with the few steps every test repeats."""

    def __init__(self, client: TestClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def publish(self, yaml_text: str, files: Path | None = None) -> dict[str, Any]:
        """Create or update a workflow and publish it; ``files`` is its directory, uploaded
        as a bundle exactly as ``opsflow apply -f DIR`` packs it."""
        workflow_id = yaml_text.split("id:", 1)[1].split("\n", 1)[0].strip()
        if files is None:
            response = self.client.put(
                f"/api/v1/workflows/{workflow_id}?publish=true", content=yaml_text, headers=YAML
            )
        else:
            response = self.client.put(
                f"/api/v1/workflows/{workflow_id}?publish=true",
                data={"definition": yaml_text},
                files={"bundle": (f"{workflow_id}.tar.gz", pack_bundle(files), "application/gzip")},
            )
        assert response.status_code in (200, 201), response.text
        body: dict[str, Any] = response.json()
        return body

    def start(self, workflow_id: str, **body: Any) -> dict[str, Any]:
        response = self.client.post(f"/api/v1/workflows/{workflow_id}/runs", json=body)
        assert response.status_code == 201, response.text
        started: dict[str, Any] = response.json()
        return started

    def events(self, execution_id: str, last_event_id: str | None = None) -> list[Event]:
        """Every event from ``last_event_id`` (or the start) until the stream ends."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        with self.client.stream(
            "GET", f"/api/v1/executions/{execution_id}/events", headers=headers
        ) as response:
            assert response.status_code == 200, response.read()
            return list(sse_events(response))

    def wait(self, execution_id: str) -> dict[str, Any]:
        """Follow the events until the run ends, then return its detail."""
        events = self.events(execution_id)
        assert events[-1].kind == "end", events[-3:]
        return self.detail(execution_id)

    def run(self, workflow_id: str, **body: Any) -> dict[str, Any]:
        """Start a run and wait for its end."""
        return self.wait(self.start(workflow_id, **body)["id"])

    def detail(self, execution_id: str) -> dict[str, Any]:
        response = self.client.get(f"/api/v1/executions/{execution_id}")
        assert response.status_code == 200, response.text
        detail: dict[str, Any] = response.json()
        return detail

    def logs(self, execution_id: str, **params: Any) -> list[dict[str, Any]]:
        response = self.client.get(f"/api/v1/executions/{execution_id}/logs", params=params)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def token_for(self, role: str) -> str:
        """A token of a user with ``role`` (the user is named after the role)."""
        created = self.client.post("/api/v1/users", json={"name": role, "role": role})
        assert created.status_code in (201, 409), created.text
        response = self.client.post("/api/v1/tokens", json={"user": role, "name": "test"})
        assert response.status_code == 201, response.text
        return str(response.json()["token"])


@pytest.fixture(scope="package")
def api(package_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The real app with its lifespan run (runtime, timers, local agent), as the admin."""
    data_dir = tmp_path_factory.mktemp("executions-data")
    settings = Settings.from_env(
        env={},
        data_dir=data_dir,
        db_url=package_db_url,
        admin_password="correct-horse-battery",
        local_agent_concurrency=16,
    )
    with TestClient(create_app(settings)) as client:
        token = (data_dir / "admin-token").read_text().strip()
        client.headers["Authorization"] = f"Bearer {token}"
        yield Api(client, settings)


def step_of(detail: dict[str, Any], step_id: str) -> dict[str, Any]:
    """The step ``step_id`` of an execution detail."""
    (step,) = [s for s in detail["steps"] if s["id"] == step_id]
    found: dict[str, Any] = step
    return found
