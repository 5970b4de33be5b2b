"""``opsflow schedules list`` against a real server."""

from __future__ import annotations

import json

from tests.integration.cli.conftest import Server

NIGHTLY = """\
id: nightly
triggers:
  - {type: schedule, cron: '30 2 * * *', timezone: Europe/Berlin}
steps:
  - {id: say, type: script, shell: sh, run: echo hi}
"""


def test_schedules_list_shows_next_fire_and_the_next_five(server: Server) -> None:
    response = server.api.put(
        "/workflows/nightly",
        params={"publish": "true"},
        content=NIGHTLY,
        headers={"Content-Type": "application/yaml"},
    )
    assert response.status_code in (200, 201), response.text

    listed = server.cli("schedules", "list")
    previewed = server.cli("schedules", "list", "--preview")
    as_json = server.cli("schedules", "list", "-o", "json")

    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("nightly"))
    assert "schedule-1" in row and "30 2 * * *" in row and "Europe/Berlin" in row
    assert "T02:30:00+0" in row
    preview = next(line for line in previewed.stdout.splitlines() if line.startswith("nightly/"))
    assert preview.count("T02:30:00+0") == 5
    (schedule,) = [s for s in json.loads(as_json.stdout) if s["workflow_id"] == "nightly"]
    assert schedule["next_fire_at"] == schedule["preview"][0]


def _row(server: Server, workflow: str) -> str:
    listed = server.cli("schedules", "list")
    assert listed.returncode == 0, listed.stderr
    return next(line for line in listed.stdout.splitlines() if line.startswith(workflow))


def test_triggers_fire_enable_disable_and_the_status_column(server: Server) -> None:
    text = NIGHTLY.replace("nightly", "switched")
    response = server.api.put(
        "/workflows/switched",
        params={"publish": "true"},
        content=text,
        headers={"Content-Type": "application/yaml"},
    )
    assert response.status_code in (200, 201), response.text
    assert " active " in _row(server, "switched")

    disabled = server.cli("triggers", "disable", "switched", "schedule-1")
    assert disabled.returncode == 0, disabled.stderr
    assert "switched/schedule-1: disabled" in disabled.stdout
    row = _row(server, "switched")
    assert " disabled " in row and "(active)" not in row
    refused = server.cli("triggers", "fire", "switched", "schedule-1")
    assert refused.returncode != 0 and "disabled" in refused.stderr

    enabled = server.cli("triggers", "enable", "switched", "schedule-1")
    assert enabled.returncode == 0, enabled.stderr
    assert "switched/schedule-1: enabled" in enabled.stdout

    assert server.api.post("/workflows/switched/pause").status_code == 200
    assert " workflow paused " in _row(server, "switched")
    # Fired by hand while paused: a manual act, like `opsflow run`.
    fired = server.cli("triggers", "fire", "switched", "schedule-1")
    assert fired.returncode == 0, fired.stderr
    execution_id = fired.stdout.strip()
    run = server.api.get(f"/executions/{execution_id}").json()
    assert run["trigger_data"]["instant"].endswith(("+01:00", "+02:00"))  # Europe/Berlin
    assert execution_id in _row(server, "switched")
