"""Incident triggers fed by a real Prometheus Alertmanager, on each backend: grouped alerts
start one run each, its repeat notifications start nothing, a resolve runs when asked for, a
new firing after the resolve is a new incident, and a receiver without the secret is refused.

Alertmanager runs on loopback with group_wait and group_interval of 1 s and repeat_interval
of 2 s (tests/integration/triggers/alertmanager.py); alerts are posted to its API v2 as
Prometheus posts them."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.triggers.alertmanager import run_alertmanager
from tests.integration.triggers.conftest import AM_SECRET as SECRET
from tests.integration.triggers.conftest import TriggerServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def api(trigger_server: TriggerServer) -> httpx.Client:
    return trigger_server.api


def publish(api: httpx.Client, on: str = "[firing]") -> tuple[str, str]:
    """A workflow with one incident trigger; returns its id and hook URL."""
    workflow_id = f"inc-{uuid.uuid4().hex[:10]}"
    text = f"""\
id: {workflow_id}
params:
  service: {{type: string, default: none}}
triggers:
  - type: incident
    match: {{alertname: "HighRequestLatency", service: "checkout.*"}}
    on: {on}
    secret: AM_TOKEN
    params: {{service: "{{{{ incident.labels.service }}}}"}}
steps:
  - id: page
    type: script
    shell: sh
    env: {{TITLE: "{{{{ incident.title }}}}", STATUS: "{{{{ incident.status }}}}"}}
    run: 'echo "$STATUS: $TITLE"'
"""
    answer = api.put(
        f"/workflows/{workflow_id}",
        params={"publish": "true"},
        content=text,
        headers={"Content-Type": "application/yaml"},
    )
    assert answer.status_code in (200, 201), answer.text
    (trigger,) = api.get(f"/workflows/{workflow_id}/triggers").json()
    return workflow_id, str(trigger["url"])


def executions(api: httpx.Client, workflow_id: str) -> list[dict[str, Any]]:
    items = api.get("/executions", params={"workflow": workflow_id}).json()["items"]
    return sorted(items, key=lambda e: e["created_at"])


def detail(api: httpx.Client, execution: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = api.get(f"/executions/{execution['id']}").json()
    return found


def deliveries(api: httpx.Client, workflow_id: str) -> list[dict[str, Any]]:
    answer = api.get(f"/workflows/{workflow_id}/triggers/incident-1/deliveries")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    """Until ``check()`` holds: Alertmanager's notifications are what we wait for, and it
    gives no other signal than the deliveries they leave."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def alert(service: str, **fields: Any) -> dict[str, Any]:
    return {
        "labels": {"alertname": "HighRequestLatency", "service": service, "severity": "critical"},
        "annotations": {"summary": f"{service} p99 latency above 2s"},
        "generatorURL": "http://prometheus.example:9090/graph",
        **fields,
    }


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def test_grouped_alerts_run_once_each_while_firing_and_again_on_resolve(
    api: httpx.Client, tmp_path: Path
) -> None:
    workflow_id, url = publish(api, on="[firing, resolved]")
    with run_alertmanager(tmp_path / "am", url, bearer=SECRET) as am:
        # One group (alertname) of three alerts: two match the trigger, one does not.
        am.post(alert("checkout-api"), alert("checkout-web"), alert("search"))
        wait_for("two runs", lambda: len(executions(api, workflow_id)) == 2)
        runs = executions(api, workflow_id)
        services = sorted(detail(api, r)["params"]["service"] for r in runs)
        assert services == ["checkout-api", "checkout-web"]
        first = deliveries(api, workflow_id)
        assert any(d["outcome"] == "filtered" and "service='search'" in d["reason"] for d in first)

        # Repeat notifications (every 2 s) carry the same alerts and start nothing.
        wait_for(
            "two repeat notifications",
            lambda: sum(d["outcome"] == "deduplicated" for d in deliveries(api, workflow_id)) >= 4,
        )
        assert len(executions(api, workflow_id)) == 2

        # Resolved: one more run for checkout-api, with incident.status resolved.
        am.post(alert("checkout-api", endsAt=now_iso()))
        wait_for("the resolve run", lambda: len(executions(api, workflow_id)) == 3)
        resolved = detail(api, executions(api, workflow_id)[-1])
        assert resolved["params"]["service"] == "checkout-api"
        assert resolved["trigger_data"]["incident"]["status"] == "resolved"
        assert resolved["trigger"]["source"].endswith(" resolved")

        # Firing again after the resolve: a new incident, a new run.
        am.post(alert("checkout-api"))
        wait_for("the new firing's run", lambda: len(executions(api, workflow_id)) == 4)

    def incidents() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = api.get("/incidents", params={"workflow": workflow_id}).json()
        return found

    # The incidents list is written just after the runs start (its own transaction).
    wait_for("three incidents", lambda: len(incidents()) == 3)
    by_service: dict[str, list[dict[str, Any]]] = {}
    for incident in incidents():
        by_service.setdefault(incident["labels"]["service"], []).append(incident)
    assert sorted(by_service) == ["checkout-api", "checkout-web"]
    api_incidents = sorted(by_service["checkout-api"], key=lambda i: i["starts_at"])
    assert [i["status"] for i in api_incidents] == ["resolved", "firing"]
    assert [[e["on"] for e in i["executions"]] for i in api_incidents] == [
        ["firing", "resolved"],
        ["firing"],
    ]
    assert api_incidents[0]["notifications"] >= 3
    assert api_incidents[0]["severity"] == "critical"
    assert api_incidents[0]["title"] == "checkout-api p99 latency above 2s"
    assert len(executions(api, workflow_id)) == 4


def test_a_resolve_starts_nothing_by_default(api: httpx.Client, tmp_path: Path) -> None:
    workflow_id, url = publish(api)
    with run_alertmanager(tmp_path / "am", url, bearer=SECRET) as am:
        am.post(alert("checkout-api"))
        wait_for("the run", lambda: len(executions(api, workflow_id)) == 1)
        am.post(alert("checkout-api", endsAt=now_iso()))

        def status() -> list[str]:
            found = api.get("/incidents", params={"workflow": workflow_id}).json()
            return [i["status"] for i in found]

        wait_for("the incident to resolve", lambda: status() == ["resolved"])
    assert any("resolved" in d["reason"] for d in deliveries(api, workflow_id))
    assert len(executions(api, workflow_id)) == 1


def test_a_receiver_without_the_secret_is_refused(api: httpx.Client, tmp_path: Path) -> None:
    workflow_id, url = publish(api)
    with run_alertmanager(tmp_path / "am", url) as am:
        am.post(alert("checkout-api"))
        wait_for(
            "a refused notification",
            lambda: any(d["outcome"] == "refused" for d in deliveries(api, workflow_id)),
        )
    refused = deliveries(api, workflow_id)[0]
    assert refused["status_code"] == 401
    assert "must carry the trigger's secret" in refused["reason"]
    assert executions(api, workflow_id) == []
    assert api.get("/incidents", params={"workflow": workflow_id}).json() == []


def test_the_documented_curl_example_is_a_notification_the_server_accepts(
    api: httpx.Client, tmp_path: Path
) -> None:
    workflow_id, url = publish(api)
    howto = (Path(__file__).parents[3] / "docs" / "triggers" / "alertmanager.md").read_text()
    (recipe,) = [b for b in re.findall(r"```sh\n(.*?)\n```", howto, re.S) if "curl" in b]
    script = f"SECRET='{SECRET}'\n" + recipe.replace(
        "https://opsflow.example.com/hooks/checkout-latency", url
    )
    assert url in script
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["outcome"] == "started", answer
    (run,) = executions(api, workflow_id)
    assert detail(api, run)["params"]["service"] == "checkout-api"
