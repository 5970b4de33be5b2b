"""``GET /metrics`` of a real ``opsflow server`` on each backend: valid Prometheus text, and
figures that move when a run completes and when a live stream opens."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from opsflow.api.metrics import SETTLE
from tests.conftest import BACKENDS
from tests.integration.api.test_live_feed import Feed
from tests.servers import RunningServer, fresh_database, run_server

pytestmark = pytest.mark.timeout(90)

FLOW = "id: measured\nsteps:\n  - {id: only, type: script, shell: sh, run: 'echo hi'}\n"
YAML = {"Content-Type": "application/yaml"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> Iterator[RunningServer]:
    for db_url in fresh_database(request, tmp_path_factory, "metrics"):
        with run_server(db_url, tmp_path) as running:
            yield running


def scrape(server: RunningServer) -> Samples:
    """Every sample of one scrape, parsed by prometheus_client's own text parser."""
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def api(server: RunningServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.token}", **kwargs.pop("headers", {})}
    return httpx.request(method, f"{server.url}/api/v1{path}", headers=headers, **kwargs)


def test_metrics_parse_and_move_when_a_run_completes(server: RunningServer) -> None:
    before = scrape(server)
    completed = ("opsflow_executions", (("status", "completed"),))
    steps = ("opsflow_step_duration_seconds_count", (("status", "completed"), ("type", "script")))
    dispatched = ("opsflow_dispatch_latency_seconds_count", ())
    assert before[completed] == 0
    assert before[("opsflow_agents_online", (("pool", "default"),))] == 1  # the local agent
    assert before[("opsflow_sse_clients", ())] == 0

    saved = api(server, "PUT", "/workflows/measured?publish=true", content=FLOW, headers=YAML)
    assert saved.status_code == 201, saved.text
    execution_id = api(server, "POST", "/workflows/measured/runs", json={}).json()["id"]
    deadline = time.monotonic() + 30
    while api(server, "GET", f"/executions/{execution_id}").json()["status"] != "completed":
        assert time.monotonic() < deadline, "the run did not complete"
        time.sleep(0.1)  # the test's own view of the run

    assert scrape(server)[completed] == 1  # counted from the database at once
    time.sleep(SETTLE + 0.2)  # the histograms take in what ended SETTLE seconds ago
    after = scrape(server)
    assert after.get(steps, 0) == before.get(steps, 0) + 1
    assert after[dispatched] == before.get(dispatched, 0) + 1

    feed = Feed(f"{server.url}/api/v1/events", {"Authorization": f"Bearer {server.token}"})
    try:
        feed.next("ready")
        assert scrape(server)[("opsflow_sse_clients", ())] == 1
    finally:
        feed.close()
