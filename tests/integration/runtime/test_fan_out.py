"""Fanned-out steps (for_each, matrix) through the real runtime and local agent."""

from __future__ import annotations

import pytest

from opsflow.status import ExecutionStatus, StepStatus

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
