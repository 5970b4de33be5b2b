"""A template that raises while the runtime evaluates a gate fails or marks only that gate: the
report of the step before it, which caused the evaluation, is kept (it runs once)."""

from __future__ import annotations

import pytest

from opsflow.status import ExecutionStatus, JobStatus, StepStatus
from opsflow.store import approvals as approvals_store

from .conftest import Harness

pytestmark = pytest.mark.anyio

UPSTREAM = """
id: gate-template
steps:
  - {id: a, type: script, shell: sh, retries: 2, run: "echo ran"}
"""


async def test_a_condition_that_raises_fails_and_the_upstream_step_ran_once(
    harness: Harness,
) -> None:
    eid = await harness.start_async(
        UPSTREAM + '  - {id: c, type: condition, needs: [a], if: "{{ 1/0 }}"}\n'
        "  - {id: after, type: script, needs: [c.true], run: 'true'}\n"
    )
    ex = await harness.wait(eid)
    assert ex.status == ExecutionStatus.FAILED
    (job,) = harness.jobs(eid)
    assert (job.step_id, job.attempt, job.status) == ("a", 1, JobStatus.COMPLETED)
    steps = harness.steps(eid)
    assert steps["c"].status == StepStatus.FAILED
    assert "if: division by zero (ZeroDivisionError) in condition '{{ 1/0 }}'" in (
        steps["c"].error or ""
    )
    assert steps["after"].status == StepStatus.SKIPPED


async def test_an_approval_message_that_raises_still_opens_the_gate_saying_why(
    harness: Harness,
) -> None:
    eid = await harness.start_async(
        UPSTREAM + '  - {id: ok, type: approval, needs: [a], message: "{{ 1/0 }}"}\n'
    )
    await harness.wait(eid, until=lambda ex: ex.status == ExecutionStatus.PAUSED)
    (job,) = harness.jobs(eid)
    assert (job.step_id, job.attempt, job.status) == ("a", 1, JobStatus.COMPLETED)
    with harness.runtime.db.read() as session:
        gate = approvals_store.current(session, eid, "ok")
    assert gate.message.startswith("{{ 1/0 }}\n(the message could not be rendered: message: ")
    assert "division by zero (ZeroDivisionError)" in gate.message
    assert any(
        line.startswith("approval ok: message: division by zero")
        for line in harness.engine_log(eid)
    ), harness.engine_log(eid)
