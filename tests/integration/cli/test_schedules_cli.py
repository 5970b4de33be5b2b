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
