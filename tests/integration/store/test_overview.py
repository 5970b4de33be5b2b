"""The lists' aggregates on both databases: last run, success over a window of ended runs
(test runs excluded), published triggers, and step progress."""

from __future__ import annotations

import uuid
from typing import Any

from opsflow.status import ExecutionStatus, StepStatus
from opsflow.store import overview
from opsflow.store import runs as runs_store
from opsflow.store.db import Database


def add_execution(
    db: Database,
    workflow_id: str,
    status: ExecutionStatus,
    at: float,
    *,
    test_run: bool = False,
    steps: list[StepStatus] | None = None,
) -> str:
    execution_id = uuid.uuid4().hex
    ended = at + 1 if status.terminal else None
    values: dict[str, Any] = {
        "id": execution_id,
        "workflow_id": workflow_id,
        "version": None if test_run else 1,
        "test_run": test_run,
        "definition": {},
        "status": status.value,
        "status_reason": "",
        "trigger_type": "manual",
        "trigger": {},
        "params": {},
        "started_by": "admin",
        "created_at": at,
        "started_at": at,
        "ended_at": ended,
    }
    step_rows: list[dict[str, Any]] = [
        {
            "step_id": f"s{i}",
            "position": i,
            "type": "script",
            "status": s.value,
            "retry_base": 0,
            "user_skipped": False,
            "outputs": {},
        }
        for i, s in enumerate(steps or [])
    ]
    with db.session() as session:
        runs_store.insert_execution(session, values, step_rows)
    return execution_id


def test_success_rate_counts_only_the_last_window_of_ended_runs(database: Database) -> None:
    c, f = ExecutionStatus.COMPLETED, ExecutionStatus.FAILED
    for i, status in enumerate([c, c, c, f, c, f]):  # oldest first
        add_execution(database, "wf", status, 1000.0 + i)
    add_execution(database, "wf", c, 2000.0, test_run=True)  # a draft's test run: not counted
    newest = add_execution(database, "wf", ExecutionStatus.RUNNING, 3000.0)
    with database.read() as session:
        stats = overview.workflow_run_stats(session, ["wf", "never-run"], window=4)
    wf = stats["wf"]
    assert (wf.ended, wf.completed) == (4, 2), "the last four ended: c, f, c, f"
    assert wf.success_rate == 0.5
    assert wf.last is not None and wf.last.id == newest
    assert wf.last.status == ExecutionStatus.RUNNING and wf.last.ended_at is None
    assert stats["never-run"] == overview.NO_RUNS and stats["never-run"].success_rate is None


def test_step_counts_group_each_executions_steps_by_status(database: Database) -> None:
    s = StepStatus
    one = add_execution(
        database,
        "wf",
        ExecutionStatus.RUNNING,
        1.0,
        steps=[s.SUCCEEDED, s.SKIPPED, s.FAILED, s.RUNNING, s.WAITING, s.PENDING, s.CANCELLED],
    )
    empty = add_execution(database, "wf", ExecutionStatus.PENDING, 2.0)
    with database.read() as session:
        counts = overview.step_counts(session, [one, empty])
    assert counts[one] == overview.StepCounts(
        total=7, done=4, running=1, waiting=1, failed=1, skipped=1, cancelled=1
    )
    assert counts[empty] == overview.StepCounts()
