"""Fanned-out steps (for_each, matrix) through the real runtime and local agent."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from opsflow.status import ExecutionStatus, JobStatus, StepStatus

from .conftest import Harness

pytestmark = pytest.mark.anyio

FOR_EACH = """
id: fan
params:
  regions: {type: string, default: "eu\\nus\\nap"}
steps:
  - id: deploy
    type: script
    shell: sh
    for_each: "{{ params.regions }}"
    env: {REGION: "{{ item }}", N: "{{ index }}"}
    run: echo "where=$REGION-$N" >> "$OPSFLOW_OUTPUT"
  - id: report
    type: script
    shell: sh
    needs: [deploy]
    env:
      COUNT: "{{ nodes.deploy.output.succeeded }}"
      FIRST: "{{ nodes.deploy.output['items'][0].outputs.where }}"
    run: echo "seen=$COUNT $FIRST" >> "$OPSFLOW_OUTPUT"
"""


async def test_for_each_runs_one_job_per_line_and_gathers_outputs_in_order(
    harness: Harness,
) -> None:
    eid = await harness.start_async(FOR_EACH)
    ex = await harness.wait(eid)
    assert ex.status == ExecutionStatus.COMPLETED, harness.engine_log(eid)
    steps = harness.steps(eid)
    out = steps["deploy"].outputs
    assert [i["outputs"]["where"] for i in out["items"]] == ["eu-0", "us-1", "ap-2"]
    assert [i["item"] for i in out["items"]] == ["eu", "us", "ap"]
    assert (out["total"], out["succeeded"], out["failed"]) == (3, 3, 0)
    assert steps["report"].outputs["seen"] == "3 eu-0"
    jobs = [j for j in harness.jobs(eid) if j.step_id == "deploy"]
    assert sorted(j.item for j in jobs if j.item is not None) == [0, 1, 2]


async def test_a_matrix_with_exclude_runs_each_remaining_combination(harness: Harness) -> None:
    eid = await harness.start_async(
        """
id: grid
steps:
  - id: build
    type: script
    shell: sh
    matrix:
      region: [eu, us]
      tier: [api, worker]
      exclude: [{region: us, tier: worker}]
    env: {WHERE: "{{ matrix.region }}/{{ matrix.tier }}"}
    run: echo "at=$WHERE" >> "$OPSFLOW_OUTPUT"
"""
    )
    ex = await harness.wait(eid)
    assert ex.status == ExecutionStatus.COMPLETED, harness.engine_log(eid)
    items = harness.steps(eid)["build"].outputs["items"]
    assert [i["outputs"]["at"] for i in items] == ["eu/api", "eu/worker", "us/api"]


@pytest.mark.parametrize("fail_fast", [True, False])
async def test_fail_fast_decides_whether_the_other_items_run(
    harness: Harness, fail_fast: bool
) -> None:
    eid = await harness.start_async(
        f"""
id: ff
steps:
  - id: each
    type: script
    shell: sh
    for_each: [bad, a, b, c]
    max_parallel: 1
    fail_fast: {str(fail_fast).lower()}
    env: {{X: "{{{{ item }}}}"}}
    run: test "$X" != bad
"""
    )
    ex = await harness.wait(eid)
    assert ex.status == ExecutionStatus.FAILED
    step = harness.steps(eid)["each"]
    assert step.status == StepStatus.FAILED
    statuses = [i["status"] for i in step.outputs["items"]]
    if fail_fast:
        assert statuses == ["failed", "cancelled", "cancelled", "cancelled"]
        assert len(harness.jobs(eid)) == 1
    else:
        assert statuses == ["failed", "succeeded", "succeeded", "succeeded"]
        assert len(harness.jobs(eid)) == 4
    assert "1 of 4 items failed (item 0" in (step.error or "")


async def test_a_failed_item_is_retried_alone(harness: Harness) -> None:
    eid = await harness.start_async(
        """
id: flaky-item
steps:
  - id: each
    type: script
    shell: sh
    for_each: [a, b, c]
    retries: 1
    retry_delay: 0.05s
    env: {X: "{{ item }}", MARK: "{{ execution.id }}"}
    run: |
      if [ "$X" = b ] && [ ! -e "/tmp/$MARK-b" ]; then touch "/tmp/$MARK-b"; exit 1; fi
      echo "ok=$X" >> "$OPSFLOW_OUTPUT"
"""
    )
    ex = await harness.wait(eid)
    assert ex.status == ExecutionStatus.COMPLETED, harness.engine_log(eid)
    jobs = harness.jobs(eid)
    assert sorted(j.item for j in jobs if j.item is not None) == [0, 1, 1, 2]
    items = harness.steps(eid)["each"].outputs["items"]
    assert [i["outputs"]["ok"] for i in items] == ["a", "b", "c"]


async def test_a_list_too_long_fails_the_step_saying_so(harness: Harness) -> None:
    eid = await harness.start_async(
        """
id: too-many
steps:
  - id: each
    type: script
    for_each: "{{ range(1001) | list }}"
    run: "true"
"""
    )
    ex = await harness.wait(eid)
    assert ex.status == ExecutionStatus.FAILED
    error = harness.steps(eid)["each"].error or ""
    assert "for_each gave 1001 items; a step may fan out to at most 1000" in error


async def test_the_engine_log_works_out_the_items_before_it_fans_out(harness: Harness) -> None:
    # The new-user trial's run: 4 items, `retries: 1`, the last item fails every time.
    eid = await harness.start_async(
        """
id: last-fails
steps:
  - id: each
    type: script
    shell: sh
    for_each: [a, b, c, d]
    retries: 1
    env: {X: "{{ item }}"}
    run: test "$X" != d
"""
    )
    ex = await harness.wait(eid)
    assert ex.status == ExecutionStatus.FAILED
    log = harness.engine_log(eid)
    working, fans = "step each is working out its items", "step each fans out to 4 items"
    assert working in log and fans in log, log
    assert log.index(working) < log.index(fans), log


async def test_a_list_that_cannot_be_worked_out_is_told_after_the_step_starts_on_it(
    harness: Harness,
) -> None:
    eid = await harness.start_async(
        """
id: bad-list
steps:
  - {id: each, type: script, for_each: "{{ 5 }}", run: "true"}
"""
    )
    ex = await harness.wait(eid)
    assert ex.status == ExecutionStatus.FAILED
    log = harness.engine_log(eid)
    working = log.index("step each is working out its items")
    why = [i for i, m in enumerate(log) if m.startswith("step each: its items could not be")]
    assert why and working < why[0], log


# The trial's wf/fh, its flag file and receiver's port filled in by the test.
FH = """
id: fh
steps:
  - id: src
    type: script
    run: |
      if [ -f FLAG ]; then echo 'l=["p","q","r"]' >> "$OPSFLOW_OUTPUT"
      else echo 'l=["p","BAD"]' >> "$OPSFLOW_OUTPUT"; fi
  - id: work
    type: script
    needs: [src]
    for_each: "{{ nodes.src.output.l }}"
    env: {X: "{{ item }}"}
    run: |
      [ "$X" != BAD ] || exit 9
      echo "did $X"
  - id: post
    type: http
    needs: [work]
    for_each: "{{ nodes.work.output.items }}"
    method: POST
    url: "http://127.0.0.1:PORT/item/{{ index }}"
    json: {item: "{{ item.item }}", status: "{{ item.status }}", m: "{{ matrix }}"}
"""


class _Receiver(BaseHTTPRequestHandler):
    """Takes the `post` step's requests and keeps their paths and bodies."""

    got: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).got.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


async def test_retry_from_here_before_a_fanned_out_step_works_its_list_out_again(
    harness: Harness, tmp_path: Path
) -> None:
    # The second new-user trial's workflow (wf/fh): `src` gives a list with a bad entry, so
    # `work` fails; once the flag exists src gives a good list, and retrying src from here
    # must run src again and fan `work` (and `post`) out to the new list. Before the fix the
    # new jobs of `work` took the attempt numbers of its old ones and src's report failed.
    _Receiver.got = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    flag = tmp_path / "flag-fh"
    try:
        eid = await harness.start_async(
            FH.replace("FLAG", str(flag)).replace("PORT", str(server.server_address[1]))
        )
        assert (await harness.wait(eid)).status == ExecutionStatus.FAILED
        assert harness.steps(eid)["work"].status == StepStatus.FAILED
        flag.touch()
        reset = await asyncio.to_thread(
            harness.runtime.retry_step, eid, "src", by="alice", from_here=True
        )
        assert reset == ["work", "post"]
        ex = await harness.wait(eid)
        assert ex.status == ExecutionStatus.COMPLETED, harness.engine_log(eid)
        steps = harness.steps(eid)
        assert [i["item"] for i in steps["work"].outputs["items"]] == ["p", "q", "r"]
        jobs = harness.jobs(eid)
        work = sorted((j.attempt, j.item) for j in jobs if j.step_id == "work")
        # Two items the first time, three more numbered after them.
        assert [a for a, _ in work] == [1, 2, 3, 4, 5]
        assert sorted(i for a, i in work if a > 2 and i is not None) == [0, 1, 2]
        assert len([j for j in jobs if j.step_id == "src"]) == 2
        assert sorted(p for p, _ in _Receiver.got) == ["/item/0", "/item/1", "/item/2"]
        assert sorted(b["item"] for _, b in _Receiver.got) == ["p", "q", "r"]
    finally:
        server.shutdown()
        server.server_close()


async def test_a_report_that_cannot_be_recorded_is_rolled_back_and_logged_with_its_traceback(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # What hid HIGH 1: the reconcile inside the report's transaction raised, and the server
    # said only 'Task exception was never retrieved'.
    reconciler = harness.runtime.jobs.reconciler
    real = reconciler.reconcile

    def failing(tx: Any, execution_id: str, **kw: Any) -> None:
        if kw.get("ended") is not None:
            raise RuntimeError("the reconcile broke")
        real(tx, execution_id, **kw)

    monkeypatch.setattr(reconciler, "reconcile", failing)
    eid = await harness.start_async(
        """
id: broken-report
steps:
  - {id: each, type: script, for_each: [a], run: "true"}
"""
    )
    deadline = asyncio.get_running_loop().time() + 10
    while "recording the end of job" not in caplog.text:
        assert asyncio.get_running_loop().time() < deadline, caplog.text
        await asyncio.sleep(0.05)
    (record,) = [r for r in caplog.records if "recording the end of job" in r.getMessage()]
    assert record.levelname == "ERROR" and record.exc_info is not None
    assert "the reconcile broke" in caplog.text  # the traceback is in the log
    assert "nothing of it was written" in record.getMessage()
    (job,) = harness.jobs(eid)
    assert not job.status.terminal  # the end was rolled back with the reconcile
    assert harness.steps(eid)["each"].status == StepStatus.RUNNING


async def test_a_persons_cancel_of_one_item_stops_it_gracefully_not_forced(
    harness: Harness,
) -> None:
    # Trial 2, L15: the item ended 'cancelled (forced)' though nobody forced anything.
    eid = await harness.start_async(
        """
id: item-cancel
steps:
  - {id: slow, type: script, shell: sh, for_each: [1, 2], min_success: 0, run: "sleep 30"}
"""
    )

    def both_running(ex: Any) -> bool:
        jobs = harness.jobs(eid)
        return len(jobs) == 2 and all(j.status == JobStatus.RUNNING for j in jobs)

    await harness.wait(eid, until=both_running)
    await asyncio.to_thread(harness.runtime.cancel_items, eid, "slow", 1, by="alice")
    (job,) = [j for j in harness.jobs(eid) if j.item == 1]
    assert job.cancel_requested and not job.cancel_force
    await harness.wait(
        eid, until=lambda ex: any(j.item == 1 and j.status.terminal for j in harness.jobs(eid))
    )
    (job,) = [j for j in harness.jobs(eid) if j.item == 1]
    assert job.status == JobStatus.CANCELLED
    assert job.error == "cancelled", job.error
    log = harness.engine_log(eid)
    assert "step slow: stopping item 1 attempt 1: item 1 cancelled by a person" in log, log
    await asyncio.to_thread(harness.runtime.cancel_items, eid, "slow", None, by="alice")
    assert (await harness.wait(eid)).status == ExecutionStatus.COMPLETED
