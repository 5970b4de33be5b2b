"""``opsflow analytics`` against a real server over a seeded history."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from opsflow.store.db import Database
from tests.history import seed_history
from tests.integration.cli.conftest import Server

END = datetime(2026, 10, 1, tzinfo=UTC).timestamp()


def test_analytics_prints_the_api_figures_as_tables(server: Server, server_db_url: str) -> None:
    seed_history(Database(server_db_url), executions=300, until=END, days=10, workflows=3)
    window = ["--since", "2026-09-21", "--until", "2026-10-01"]

    as_json = server.cli("analytics", *window, "-o", "json")
    as_text = server.cli("analytics", *window, "--workflow", "wf-00")
    wf_only = server.api.get(
        "/analytics", params={"since": "2026-09-21", "until": "2026-10-01", "workflow": "wf-00"}
    ).json()

    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert body["summary"]["total_executions"] == 300
    assert len(body["daily"]) == 10
    assert as_text.returncode == 0, as_text.stderr
    out = as_text.stdout
    for title in ("Summary", "Daily", "Top workflows", "Slowest steps", "Jobs per agent"):
        assert title in out
    s = wf_only["summary"]
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("EXECUTIONS"))
    summary_row = lines[header + 1].split()
    counts = [s["total_executions"], s["completed"], s["failed"], s["other"]]
    assert summary_row[:4] == [str(n) for n in counts]
    assert f"{s['success_rate'] * 100:.1f}%" in summary_row
    assert "2026-09-30" in out and "wf-00" in out


def test_a_bad_since_is_refused_naming_it(server: Server) -> None:
    result = server.cli("analytics", "--since", "last tuesday")
    assert result.returncode == 1
    assert "since" in result.stderr and "ISO 8601" in result.stderr
