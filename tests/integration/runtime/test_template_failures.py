"""A template that raises while the runtime evaluates a gate fails or marks only that gate: the
report of the step before it, which caused the evaluation, is kept (it runs once). The same
holds for a child workflow or a follower whose saved definition today's rules would refuse."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
from sqlalchemy.orm import Session

from opsflow.auth.secrets import SecretBox
from opsflow.status import ExecutionStatus, JobStatus, StepStatus
from opsflow.store import approvals as approvals_store
from opsflow.store import workflows as workflows_store
from opsflow.triggers import sync as triggers_sync

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


# A workflow published before a rule existed: its condition compares a secret, which
# validation now refuses, but which was saved (and may still be run) as it stands.
LEGACY = {
    "id": "legacy-child",
    "params": {"p": {"type": "string", "default": "none"}},
    "steps": [
        {"id": "x", "type": "script", "shell": "sh", "run": "true"},
        {"id": "c", "type": "condition", "needs": ["x"], "if": "{{ secrets.X == 'v' }}"},
    ],
}


def _save_as_stored(session: Session, definition: dict[str, Any]) -> None:
    """A draft saved as it is stored, past today's validation (as an older server saved it)."""
    workflows_store.save_draft(
        session,
        definition=definition,
        yaml_text=json.dumps(definition),
        bundle_digest=None,
        actor="admin",
    )


async def test_a_child_workflow_saved_under_older_rules_does_not_undo_the_upstream_report(
    harness: Harness,
) -> None:
    with harness.runtime.db.session() as session:
        _save_as_stored(session, LEGACY)
        workflows_store.publish(session, "legacy-child", "admin")
    eid = await harness.start_async(
        UPSTREAM.replace('run: "echo ran"', 'run: "echo p=given >> $OPSFLOW_OUTPUT"')
        + "  - {id: call, type: workflow, workflow: legacy-child, needs: [a], wait: false,"
        ' params: {p: "{{ nodes.a.output.p }}"}}\n'
    )
    ex = await harness.wait(eid)
    assert ex.status == ExecutionStatus.COMPLETED, harness.engine_log(eid)
    (job,) = harness.jobs(eid)  # the report of a stood: it ran once
    assert (job.step_id, job.attempt, job.status) == ("a", 1, JobStatus.COMPLETED)
    child = harness.steps(eid)["call"].outputs["execution_id"]
    assert harness.execution(child).params == {"p": "given"}


async def test_a_child_workflow_that_no_longer_loads_fails_only_the_workflow_step(
    harness: Harness,
) -> None:
    unknown = {**LEGACY, "steps": [{"id": "x", "type": "script", "run": "true", "colour": "b"}]}
    with harness.runtime.db.session() as session:
        _save_as_stored(session, unknown)
        workflows_store.publish(session, "legacy-child", "admin")
    eid = await harness.start_async(
        UPSTREAM + "  - {id: call, type: workflow, workflow: legacy-child, needs: [a]}\n"
    )
    ex = await harness.wait(eid)
    assert ex.status == ExecutionStatus.FAILED
    (job,) = harness.jobs(eid)
    assert (job.step_id, job.attempt, job.status) == ("a", 1, JobStatus.COMPLETED)
    call = harness.steps(eid)["call"]
    assert call.status == StepStatus.FAILED
    assert "could not start workflow legacy-child: its published definition no longer loads" in (
        call.error or ""
    ), call.error


async def test_a_follower_that_no_longer_loads_leaves_the_upstream_end_as_it_was(
    harness: Harness,
) -> None:
    follower = {
        "id": "legacy-follower",
        "triggers": [{"type": "workflow", "workflow": "chain-up"}],
        "steps": [{"id": "x", "type": "script", "run": "true", "colour": "b"}],
    }
    with harness.runtime.db.session() as session:
        _save_as_stored(session, follower)
        triggers_sync.publish(
            session, "legacy-follower", "admin", SecretBox(os.urandom(32)), time.time()
        )
    eid = await harness.start_async(UPSTREAM.replace("id: gate-template", "id: chain-up"))
    ex = await harness.wait(eid)
    assert ex.status == ExecutionStatus.COMPLETED, harness.engine_log(eid)
    (job,) = harness.jobs(eid)  # the run's end, and so the report of a, stood: it ran once
    assert (job.step_id, job.attempt, job.status) == ("a", 1, JobStatus.COMPLETED)
    note = next(line for line in harness.engine_log(eid) if "legacy-follower" in line)
    assert "did not start a run: its published definition no longer loads" in note, note
