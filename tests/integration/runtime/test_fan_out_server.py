"""A 200-item ``for_each`` with ``max_parallel: 10`` through a real ``opsflow server``
process (its local agent runs 16 jobs at once): never more than 10 items run at once, measured
from each job's own start and end (the times its script took when it began and ended; the
job rows' ``started_at`` is taken when the agent claims the job, on a clock read before the
claim's transaction, so it can precede the end of the job whose report queued it), and all
200 outputs are gathered in order."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.servers import run_server

pytestmark = pytest.mark.timeout(180)

ITEMS = 200
LIMIT = 10
FLOW = f"""
id: fan-200
steps:
  - id: each
    type: script
    shell: sh
    for_each: "{{{{ range({ITEMS}) | list }}}}"
    max_parallel: {LIMIT}
    env: {{N: "{{{{ item }}}}"}}
    run: |
      echo "began=$(date +%s.%N)" >> "$OPSFLOW_OUTPUT"
      sleep 0.05
      echo "square=$((N * N))" >> "$OPSFLOW_OUTPUT"
      echo "ended=$(date +%s.%N)" >> "$OPSFLOW_OUTPUT"
"""


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one instant (an end at the instant another starts: not both)."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, change in edges:
        running += change
        peak = max(peak, running)
    return peak


def test_200_items_run_at_most_10_at_once_and_gather_in_order(db_url: str, tmp_path: Path) -> None:
    with run_server(db_url, tmp_path, "--concurrency", "16") as server:
        api = httpx.Client(
            base_url=f"{server.url}/api/v1",
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=30,
        )
        put = api.put(
            "/workflows/fan-200",
            params={"publish": "true"},
            content=FLOW,
            headers={"Content-Type": "application/yaml"},
        )
        assert put.status_code in (200, 201), put.text
        started = api.post("/workflows/fan-200/runs", json={})
        assert started.status_code == 201, started.text
        eid = started.json()["id"]
        deadline = time.monotonic() + 150
        while True:
            detail = api.get(f"/executions/{eid}").json()
            if detail["status"] not in ("pending", "running"):
                break
            assert time.monotonic() < deadline, detail["steps"][0]["fan_out"]
            time.sleep(0.2)  # the status endpoint is what a client polls
    assert detail["status"] == "completed", detail["engine_log"][-5:]
    (step,) = detail["steps"]
    jobs = step["jobs"]
    assert len(jobs) == ITEMS and sorted(j["item"] for j in jobs) == list(range(ITEMS))
    items = step["outputs"]["items"]
    seconds = [(float(i["outputs"]["began"]), float(i["outputs"]["ended"])) for i in items]
    peak = most_at_once(seconds)
    assert peak <= LIMIT, peak
    assert peak >= LIMIT // 2, f"only {peak} items ran at once: the limit was never approached"
    assert [i["index"] for i in items] == list(range(ITEMS))
    assert [i["outputs"]["square"] for i in items] == [str(n * n) for n in range(ITEMS)]
    assert (step["outputs"]["succeeded"], step["outputs"]["total"]) == (ITEMS, ITEMS)
