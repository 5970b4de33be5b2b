"""``kill -9`` of the server in the middle of a fan-out: once it is started again, the
recorded list is used as it was (never worked out again), every item completes exactly once,
and each item's other attempts are only the ones the kills took from it ("agent lost"),
within its retries."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from opsflow.status import ExecutionStatus, JobStatus
from opsflow.store.jobs import Job

from .conftest import Api, CrashServer
from .test_kill_restart import AGENT_LOST, explain, step_of

pytestmark = pytest.mark.slow

ITEMS = 24
FLOW = f"""
id: crash-fan
params: {{marks: {{type: string}}}}
steps:
  - id: each
    type: script
    shell: sh
    for_each: "{{{{ range({ITEMS}) | list }}}}"
    max_parallel: 4
    retries: 3
    env: {{N: "{{{{ item }}}}", MARKS: "{{{{ params.marks }}}}"}}
    run: |
      echo "$N" >> "$MARKS/ran"
      sleep 0.3
      echo "out=$N" >> "$OPSFLOW_OUTPUT"
  - {{id: after, type: script, shell: sh, needs: [each], run: "true"}}
"""


def _done(api: Api, eid: str) -> int:
    counts: dict[str, int] = step_of(api.execution(eid), "each")["fan_out"]["counts"]
    return counts["succeeded"]


def _until_done(api: Api, eid: str, at_least: int) -> None:
    api.wait_for(
        f"{at_least} items done",
        lambda: _done(api, eid) >= at_least,
        timeout=60,
        explain=explain(api, [eid]),
    )


def test_kill_9_mid_fan_out_runs_every_item_exactly_once(
    crash_server: Callable[..., CrashServer], tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    server = crash_server(lease=2.0, heartbeat=0.3)
    api = server.start()
    api.publish("crash-fan", FLOW)
    eid = api.run("crash-fan", {"marks": str(marks)})
    for at_least in (4, 12):
        _until_done(api, eid, at_least)
        server.kill()
        api = server.start()
    api.wait_for(
        "the run's end",
        lambda: ExecutionStatus(api.execution(eid)["status"]).terminal,
        timeout=90,
        explain=explain(api, [eid]),
    )
    detail = api.execution(eid)
    assert detail["status"] == "completed", explain(api, [eid])()
    step = step_of(detail, "each")
    assert step["fan_out"]["total"] == ITEMS
    assert [i["item"] for i in step["items"]] == list(range(ITEMS))
    assert [i["outputs"]["out"] for i in step["outputs"]["items"]] == [str(n) for n in range(ITEMS)]
    server.kill()
    jobs = [j for j in server.jobs([eid]) if j.step_id == "each"]
    assert sorted(j.attempt for j in jobs) == list(range(1, len(jobs) + 1))
    by_item: dict[int | None, list[Job]] = defaultdict(list)
    for job in jobs:
        by_item[job.item].append(job)
    assert set(by_item) == set(range(ITEMS))
    lost = 0
    for item, mine in by_item.items():
        completed = [j for j in mine if j.status == JobStatus.COMPLETED]
        assert len(completed) == 1, (item, [(j.attempt, j.status, j.error) for j in mine])
        others = [j for j in mine if j.status != JobStatus.COMPLETED]
        assert all(AGENT_LOST in (j.error or "") for j in others), (item, others)
        assert len(mine) <= 4, (item, len(mine))
        lost += len(others)
    # The kills landed mid-fan-out: some items lost an attempt and ran again.
    assert lost >= 1
    # No job's script ran twice: each item's script ran at most once per attempt it had.
    ran = Counter(int(line) for line in (marks / "ran").read_text().split())
    assert all(ran[item] <= len(by_item[item]) for item in range(ITEMS)), ran
