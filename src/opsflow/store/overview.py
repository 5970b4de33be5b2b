"""What lists show beside each row: a workflow's last run and success rate, the trigger types
its definition declares, and how far an execution's steps have come.

Each function answers for a whole page of rows in one or two statements (window functions
and GROUP BY, the same SQL on SQLite and PostgreSQL), never one query per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from opsflow.status import ExecutionStatus, StepStatus
from opsflow.store import tables as t
from opsflow.store.runs import EX, ST

_TERMINAL = [s.value for s in ExecutionStatus if s.terminal]


@dataclass(frozen=True)
class LastRun:
    """The newest execution of a workflow (times in epoch seconds)."""

    id: str
    status: ExecutionStatus
    created_at: float
    started_at: float | None
    ended_at: float | None


@dataclass(frozen=True)
class RunStats:
    """A workflow's last run, and of its last ``window`` ended runs how many ended and how many
    of those completed."""

    last: LastRun | None
    ended: int
    completed: int

    @property
    def success_rate(self) -> float | None:
        return None if self.ended == 0 else self.completed / self.ended


NO_RUNS = RunStats(last=None, ended=0, completed=0)


def workflow_run_stats(
    session: Session, workflow_ids: Sequence[str], window: int
) -> dict[str, RunStats]:
    """Per workflow id: its newest execution and its success over the last ``window`` ended
    executions (test runs of a draft count for neither). Ids without runs get `NO_RUNS`."""
    if not workflow_ids:
        return {}
    own = and_(EX.c.workflow_id.in_(list(workflow_ids)), EX.c.test_run.is_(False))
    newest = func.row_number().over(
        partition_by=EX.c.workflow_id, order_by=(EX.c.created_at.desc(), EX.c.id.desc())
    )
    ranked = select(
        EX.c.id,
        EX.c.workflow_id,
        EX.c.status,
        EX.c.created_at,
        EX.c.started_at,
        EX.c.ended_at,
        newest.label("rank"),
    ).where(own)
    last_q = ranked.subquery()
    last_rows = session.connection().execute(select(last_q).where(last_q.c.rank == 1))
    last = {
        r.workflow_id: LastRun(
            id=r.id,
            status=ExecutionStatus(r.status),
            created_at=r.created_at,
            started_at=r.started_at,
            ended_at=r.ended_at,
        )
        for r in last_rows
    }
    latest_ended = func.row_number().over(
        partition_by=EX.c.workflow_id, order_by=(EX.c.ended_at.desc(), EX.c.id.desc())
    )
    ended_q = (
        select(EX.c.workflow_id, EX.c.status, latest_ended.label("rank"))
        .where(own, EX.c.status.in_(_TERMINAL))
        .subquery()
    )
    completed = func.sum(case((ended_q.c.status == ExecutionStatus.COMPLETED.value, 1), else_=0))
    counts = session.connection().execute(
        select(ended_q.c.workflow_id, func.count().label("ended"), completed.label("completed"))
        .where(ended_q.c.rank <= window)
        .group_by(ended_q.c.workflow_id)
    )
    by_id = {r.workflow_id: (int(r.ended), int(r.completed or 0)) for r in counts}
    stats: dict[str, RunStats] = {}
    for wid in workflow_ids:
        ended, completed_count = by_id.get(wid, (0, 0))
        stats[wid] = RunStats(last=last.get(wid), ended=ended, completed=completed_count)
    return stats


def published_triggers(
    session: Session, workflow_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """The ``triggers`` of each workflow's latest published version, for the ids that have
    one (a never-published workflow is absent: its draft speaks for it)."""
    if not workflow_ids:
        return {}
    wf, ver = t.Workflow.__table__, t.WorkflowVersion.__table__
    rows = session.connection().execute(
        select(ver.c.workflow_id, ver.c.definition)
        .join(wf, and_(wf.c.id == ver.c.workflow_id, wf.c.latest_version == ver.c.number))
        .where(wf.c.id.in_(list(workflow_ids)))
    )
    return {r.workflow_id: list((r.definition or {}).get("triggers") or []) for r in rows}


@dataclass(frozen=True)
class StepCounts:
    """How many of an execution's steps there are, have ended, run, or wait."""

    total: int = 0
    done: int = 0
    running: int = 0
    waiting: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0


def step_counts(session: Session, execution_ids: Sequence[str]) -> dict[str, StepCounts]:
    """Per execution id, its steps counted by status (ids without steps get zeros)."""
    if not execution_ids:
        return {}
    rows = session.connection().execute(
        select(ST.c.execution_id, ST.c.status, func.count().label("n"))
        .where(ST.c.execution_id.in_(list(execution_ids)))
        .group_by(ST.c.execution_id, ST.c.status)
    )
    tally: dict[str, dict[str, int]] = {eid: {} for eid in execution_ids}
    for r in rows:
        tally[r.execution_id][r.status] = int(r.n)
    return {eid: _counts(by_status) for eid, by_status in tally.items()}


def _counts(by_status: dict[str, int]) -> StepCounts:
    def n(*statuses: StepStatus) -> int:
        return sum(by_status.get(s.value, 0) for s in statuses)

    return StepCounts(
        total=sum(by_status.values()),
        done=n(*(s for s in StepStatus if s.terminal)),
        running=n(StepStatus.RUNNING),
        waiting=n(StepStatus.WAITING),
        failed=n(StepStatus.FAILED),
        skipped=n(StepStatus.SKIPPED),
        cancelled=n(StepStatus.CANCELLED),
    )
