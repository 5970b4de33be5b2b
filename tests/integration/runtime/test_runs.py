"""End-to-end runs through the real runtime and local agent, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from opsflow.status import ExecutionStatus, JobStatus, StepStatus

from .conftest import Harness

pytestmark = pytest.mark.anyio

CHAIN = """
id: chain
params:
  who: {type: string, default: world}
steps:
  - id: greet
    type: script
    shell: sh
    env: {WHO: "{{ params.who }}"}
    run: |
      echo "hello $WHO"
      echo "greeting=hi $WHO" >> "$OPSFLOW_OUTPUT"
  - id: check
    type: condition
    needs: [greet]
    if: "{{ nodes.greet.output.greeting == 'hi ' ~ params.who }}"
  - id: shout
    type: script
    needs: [check.true]
    shell: python
    env: {G: "{{ nodes.greet.output.greeting }}"}
    run: |
      import os
      print(os.environ["G"].upper())
  - id: never
    type: script
    needs: [check.false]
    run: echo never
"""


async def test_chain_runs_passes_outputs_and_takes_condition_branch(harness: Harness) -> None:
    eid = await harness.start_async(CHAIN, {"who": "ops"})
    ex = await harness.wait(eid)
    assert ex.status == ExecutionStatus.COMPLETED, harness.engine_log(eid)
    steps = harness.steps(eid)
    assert steps["greet"].outputs["greeting"] == "hi ops"
    assert steps["check"].gate_result == "true"
    assert steps["shout"].status == StepStatus.SUCCEEDED
    assert steps["never"].status == StepStatus.SKIPPED
    log = harness.engine_log(eid)
    answers = [
        i
        for i, line in enumerate(log)
        if "nodes.greet.output.greeting='hi ops'" in line and "-> true" in line
    ]
    assert answers, log
    # The engine says it evaluates the condition before the answer is told (the trial found
    # the answer first).
    evaluating = [i for i, line in enumerate(log) if "check" in line and "evaluating" in line]
    assert evaluating and evaluating[0] < answers[0], log


async def test_failed_step_retries_then_fails_the_run(harness: Harness) -> None:
    eid = await harness.start_async(
        """
id: flaky
steps:
  - {id: boom, type: script, shell: sh, run: "exit 3", retries: 2, retry_delay: 0.05s}
  - {id: after, type: script, needs: [boom], run: "true"}
"""
    )
    ex = await harness.wait(eid)
    assert ex.status == ExecutionStatus.FAILED
    jobs = [j for j in harness.jobs(eid) if j.step_id == "boom"]
    assert [j.attempt for j in jobs] == [1, 2, 3]
    assert all(j.status == JobStatus.FAILED and j.exit_code == 3 for j in jobs)
    assert harness.steps(eid)["after"].status == StepStatus.SKIPPED


async def test_step_timeout_kills_the_job(harness: Harness) -> None:
    eid = await harness.start_async(
        """
id: slow
steps:
  - {id: sleepy, type: script, shell: sh, run: "sleep 30", timeout: 0.5s}
"""
    )
    ex = await harness.wait(eid, timeout=15)
    assert ex.status == ExecutionStatus.FAILED
    (job,) = harness.jobs(eid)
    assert job.status == JobStatus.TIMEOUT
    assert job.ended_at is not None and job.started_at is not None
    assert job.ended_at - job.started_at < 10


async def test_template_error_fails_the_step_naming_the_missing_name(harness: Harness) -> None:
    eid = await harness.start_async(
        """
id: badtpl
steps:
  - {id: a, type: script, run: "true"}
  - {id: b, type: script, needs: [a], env: {X: "{{ nodes.a.output.missing }}"}, run: "echo $X"}
"""
    )
    ex = await harness.wait(eid)
    assert ex.status == ExecutionStatus.FAILED
    (_, job_b) = harness.jobs(eid)
    assert job_b.status == JobStatus.FAILED
    assert "nodes.a.output.missing" in (job_b.error or "")


async def test_workflow_timeout_stops_the_run_and_fails_it(harness: Harness) -> None:
    eid = await harness.start_async(
        """
id: too-slow
timeout: 0.5s
steps:
  - {id: sleepy, type: script, shell: sh, run: "sleep 30"}
  - {id: after, type: script, needs: [sleepy], run: "true"}
"""
    )
    ex = await harness.wait(eid, timeout=15)
    assert ex.status == ExecutionStatus.FAILED
    assert "timed out" in ex.status_reason
    (job,) = harness.jobs(eid)
    assert job.status in (JobStatus.CANCELLED, JobStatus.TIMEOUT)
    assert harness.steps(eid)["after"].status in (StepStatus.CANCELLED, StepStatus.SKIPPED)
