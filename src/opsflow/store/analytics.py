"""Analytics over a window of executions, computed by SQL aggregates in the database.

Nothing here loads executions into Python: every figure is a ``COUNT``/``SUM``/``AVG``/``GROUP
BY`` (or, for a percentile, the one or two rows it falls between), the same statements on
SQLite and PostgreSQL except where noted.

The window is ``[since, until)`` (epoch seconds), optionally of one workflow. The run figures
(totals, trend, top workflows, slowest steps) count the executions *created* in it, test runs
of a draft left out (they are not the workflow's record), and their steps. The agents' load
counts the jobs *handed out* in it and the approval waits the gates *opened* in it, test runs
included: they occupied agents and people too. (Reading jobs and gates by their own time is
also what keeps those sections to one index range each, without a join per execution.)

Percentiles follow PostgreSQL's ``percentile_cont`` (linear interpolation between the two
closest ranks, SQL:2003's definition); on SQLite the same value is read from the one or two
rows at ranks ``floor(p*(n-1))`` and ``ceil(p*(n-1))`` with ``ORDER BY ... LIMIT 2 OFFSET``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from typing import cast as typed

from sqlalchemy import (
    ColumnElement,
    Float,
    Index,
    Integer,
    Table,
    and_,
    case,
    cast,
    func,
    select,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import FromClause, Select

from opsflow.status import ExecutionStatus, JobStatus, StepStatus, StepType
from opsflow.store.approvals import ApprovalRow
from opsflow.store.jobs import JOBS
from opsflow.store.runs import EX, ST

AP = typed(Table, ApprovalRow.__table__)

# Covering indexes: each section reads only index entries (no table rows with their JSON),
# found by the window's ``created_at`` range or by workflow, then joined by execution id.
Index(
    "ix_executions_window",
    EX.c.created_at, EX.c.test_run, EX.c.workflow_id, EX.c.status, EX.c.started_at,
    EX.c.ended_at, EX.c.id,
)  # fmt: skip
Index(
    "ix_executions_workflow_window",
    EX.c.workflow_id, EX.c.created_at, EX.c.test_run, EX.c.status, EX.c.started_at,
    EX.c.ended_at, EX.c.id,
)  # fmt: skip
Index(
    "ix_execution_steps_timing",
    ST.c.execution_id, ST.c.step_id, ST.c.type, ST.c.status, ST.c.started_at, ST.c.ended_at,
)  # fmt: skip
# An execution's workflow by its id, for jobs and gates of one workflow.
Index("ix_executions_id_workflow", EX.c.id, EX.c.workflow_id)
Index(
    "ix_jobs_window",
    JOBS.c.created_at, JOBS.c.agent_id, JOBS.c.status, JOBS.c.started_at, JOBS.c.ended_at,
    JOBS.c.execution_id,
)  # fmt: skip
Index(
    "ix_approvals_window",
    AP.c.opened_at, AP.c.status, AP.c.decided_at, AP.c.execution_id,
)  # fmt: skip
DAY = 86400.0
P95 = 0.95

COMPLETED = (ExecutionStatus.COMPLETED.value,)
FAILED = (ExecutionStatus.FAILED.value, ExecutionStatus.ERROR.value)
TERMINAL = tuple(s.value for s in ExecutionStatus if s.terminal)
_ENDED_STEP = tuple(s.value for s in StepStatus if s.terminal and s != StepStatus.SKIPPED)
_JOB_FAILED = (JobStatus.FAILED.value, JobStatus.TIMEOUT.value)


@dataclass(frozen=True)
class Window:
    """Executions created in ``[since, until)`` (epoch seconds), of ``workflow`` if set."""

    since: float
    until: float
    workflow: str | None = None


@dataclass(frozen=True)
class Summary:
    """Totals of the window. Durations in seconds, from start to end of ended executions
    that started; ``success_rate`` is completed / ended (None when none ended)."""

    total: int
    completed: int
    failed: int
    other: int
    ended: int
    success_rate: float | None
    avg_duration: float | None
    p95_duration: float | None
    active_workflows: int


@dataclass(frozen=True)
class Day:
    """One UTC day of the trend: executions created that day, by how they stand now
    (failed = failed or error; other = everything not completed or failed)."""

    day: str  # YYYY-MM-DD
    completed: int
    failed: int
    other: int


@dataclass(frozen=True)
class WorkflowRuns:
    workflow_id: str
    runs: int
    completed: int
    ended: int
    avg_duration: float | None

    @property
    def success_rate(self) -> float | None:
        return None if self.ended == 0 else self.completed / self.ended


@dataclass(frozen=True)
class SlowStep:
    """A step of a workflow, by its average run time (seconds) over the window's runs."""

    workflow_id: str
    step_id: str
    type: str
    runs: int
    avg_duration: float
    max_duration: float


@dataclass(frozen=True)
class AgentLoad:
    """The jobs (attempts) handed to an agent in the window; ``busy_seconds`` sums their run
    times, so ``busy_seconds / window length`` is its utilization of one slot."""

    agent_id: str
    jobs: int
    completed: int
    failed: int
    busy_seconds: float


@dataclass(frozen=True)
class ApprovalWaits:
    """Approval gates opened in the window: how many, how many still wait, and how long the
    decided ones waited (seconds from opened to decided)."""

    total: int
    pending: int
    decided: int
    avg_wait: float | None
    p95_wait: float | None
    max_wait: float | None


@dataclass(frozen=True)
class Analytics:
    window: Window
    summary: Summary
    daily: list[Day]
    top_workflows: list[WorkflowRuns]
    slowest_steps: list[SlowStep]
    agents: list[AgentLoad]
    approvals: ApprovalWaits


def _sqlite(session: Session) -> bool:
    return session.connection().dialect.name == "sqlite"


def _in_window(session: Session, w: Window) -> ColumnElement[bool]:
    """The window's executions. On SQLite the time range is marked selective
    (``unlikely()``, a planner hint that keeps the term indexable): without ANALYZE statistics
    its planner would rather scan every step, or every execution of a status, than range over
    the window's covering index."""
    start: ColumnElement[bool] = EX.c.created_at >= w.since
    end: ColumnElement[bool] = EX.c.created_at < w.until
    if _sqlite(session):
        start, end = func.unlikely(start), func.unlikely(end)
    cond = and_(start, end, EX.c.test_run.is_(False))
    if w.workflow is not None:
        cond = and_(cond, EX.c.workflow_id == w.workflow)
    return cond


def _count_if(cond: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def _percentile(session: Session, values: Select[Any], p: float, n: int) -> float | None:
    """The ``p`` percentile (0..1) of the single column ``values`` selects (``n`` non-null
    values, counted by the caller's aggregate), as ``percentile_cont``: the database sorts;
    Python only interpolates between two rows."""
    sub = values.subquery()
    col = sub.c[0]
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        pct = func.percentile_cont(p).within_group(col)
        got = conn.execute(select(pct).select_from(sub)).scalar()
        return None if got is None else float(got)
    if n == 0:
        return None
    rank = p * (n - 1)
    lo = math.floor(rank)
    rows = conn.execute(
        select(col).where(col.is_not(None)).order_by(col).limit(2).offset(lo)
    ).scalars()
    pair = [float(v) for v in rows]
    if len(pair) == 1 or rank == lo:
        return pair[0]
    return pair[0] + (pair[1] - pair[0]) * (rank - lo)


def _day_number(session: Session, at: ColumnElement[Any]) -> ColumnElement[Any]:
    """The UTC day of epoch seconds ``at``, as days since 1970-01-01 (an integer)."""
    if session.connection().dialect.name == "postgresql":
        return cast(func.floor(at / DAY), Integer)
    return cast(at / DAY, Integer)  # SQLite truncates toward zero; our times are positive


def summary(session: Session, w: Window) -> Summary:
    """The window's totals (one scan of the executions in it, plus the percentile)."""
    duration = EX.c.ended_at - EX.c.started_at
    ended_ok = and_(
        EX.c.status.in_(TERMINAL), EX.c.started_at.is_not(None), EX.c.ended_at.is_not(None)
    )
    row = (
        session.connection()
        .execute(
            select(
                func.count().label("total"),
                _count_if(EX.c.status.in_(COMPLETED)).label("completed"),
                _count_if(EX.c.status.in_(FAILED)).label("failed"),
                _count_if(EX.c.status.in_(TERMINAL)).label("ended"),
                func.avg(case((ended_ok, duration), else_=None)).label("avg"),
                _count_if(ended_ok).label("measured"),
                func.count(func.distinct(EX.c.workflow_id)).label("workflows"),
            ).where(_in_window(session, w))
        )
        .one()
    )
    # Most runs have ended: said to SQLite's planner (likely()), it ranges over the window's
    # index instead of reading every ended execution through the status index.
    is_ended: ColumnElement[bool] = EX.c.status.in_(TERMINAL)
    if _sqlite(session):
        is_ended = func.likely(is_ended)
    durations = select(cast(duration, Float).label("d")).where(
        _in_window(session, w),
        is_ended,
        EX.c.started_at.is_not(None),
        EX.c.ended_at.is_not(None),
    )
    p95 = _percentile(session, durations, P95, int(row.measured))
    total, completed, failed = int(row.total), int(row.completed), int(row.failed)
    ended = int(row.ended)
    return Summary(
        total=total,
        completed=completed,
        failed=failed,
        other=total - completed - failed,
        ended=ended,
        success_rate=None if ended == 0 else completed / ended,
        avg_duration=None if row.avg is None else float(row.avg),
        p95_duration=p95,
        active_workflows=int(row.workflows),
    )


def daily(session: Session, w: Window) -> list[Day]:
    """One `Day` per UTC day the window touches, oldest first, days without runs as zeros."""
    day = _day_number(session, EX.c.created_at).label("day")
    rows = session.connection().execute(
        select(
            day,
            _count_if(EX.c.status.in_(COMPLETED)).label("completed"),
            _count_if(EX.c.status.in_(FAILED)).label("failed"),
            func.count().label("total"),
        )
        .where(_in_window(session, w))
        .group_by(day)
    )
    by_day = {int(r.day): (int(r.completed), int(r.failed), int(r.total)) for r in rows}
    first, last = int(w.since // DAY), math.ceil(w.until / DAY) - 1
    days: list[Day] = []
    for n in range(first, max(first, last) + 1):
        c, f, total = by_day.get(n, (0, 0, 0))
        days.append(Day(day=_iso_day(n), completed=c, failed=f, other=total - c - f))
    return days


def _iso_day(n: int) -> str:
    return datetime.fromtimestamp(n * DAY, UTC).date().isoformat()


def top_workflows(session: Session, w: Window, limit: int = 10) -> list[WorkflowRuns]:
    """The workflows with the most runs in the window, most first (ties by id)."""
    ran = and_(EX.c.status.in_(TERMINAL), EX.c.started_at.is_not(None))
    duration = case((ran, EX.c.ended_at - EX.c.started_at), else_=None)
    runs = func.count().label("runs")
    rows = session.connection().execute(
        select(
            EX.c.workflow_id,
            runs,
            _count_if(EX.c.status.in_(COMPLETED)).label("completed"),
            _count_if(EX.c.status.in_(TERMINAL)).label("ended"),
            func.avg(duration).label("avg"),
        )
        .where(_in_window(session, w))
        .group_by(EX.c.workflow_id)
        .order_by(runs.desc(), EX.c.workflow_id)
        .limit(limit)
    )
    return [
        WorkflowRuns(
            workflow_id=r.workflow_id,
            runs=int(r.runs),
            completed=int(r.completed),
            ended=int(r.ended),
            avg_duration=None if r.avg is None else float(r.avg),
        )
        for r in rows
    ]


def slowest_steps(session: Session, w: Window, limit: int = 10) -> list[SlowStep]:
    """Steps by average run time (started to ended; skipped steps and approval gates, whose
    time is people's, left out), slowest first."""
    duration = ST.c.ended_at - ST.c.started_at
    avg = func.avg(duration).label("avg")
    rows = session.connection().execute(
        select(
            EX.c.workflow_id,
            ST.c.step_id,
            func.max(ST.c.type).label("type"),
            func.count().label("runs"),
            avg,
            func.max(duration).label("max"),
        )
        .select_from(EX.join(ST, ST.c.execution_id == EX.c.id))
        .where(
            _in_window(session, w),
            ST.c.status.in_(_ENDED_STEP),
            ST.c.type != StepType.APPROVAL.value,
            ST.c.started_at.is_not(None),
            ST.c.ended_at.is_not(None),
        )
        .group_by(EX.c.workflow_id, ST.c.step_id)
        .order_by(avg.desc(), EX.c.workflow_id, ST.c.step_id)
        .limit(limit)
    )
    return [
        SlowStep(
            workflow_id=r.workflow_id,
            step_id=r.step_id,
            type=str(r.type),
            runs=int(r.runs),
            avg_duration=float(r.avg),
            max_duration=float(r.max),
        )
        for r in rows
    ]


def _own_time(
    session: Session, w: Window, table: Table, at: ColumnElement[Any]
) -> tuple[FromClause, ColumnElement[bool]]:
    """Rows of ``table`` (jobs, approvals) whose own time ``at`` is in the window, of the
    window's workflow when it has one (joined to their execution by primary key)."""
    start: ColumnElement[bool] = at >= w.since
    end: ColumnElement[bool] = at < w.until
    if _sqlite(session):  # range over the table's window index, then probe executions
        start, end = func.unlikely(start), func.unlikely(end)
    if w.workflow is None:
        return table, and_(start, end)
    joined = table.join(EX, EX.c.id == table.c.execution_id)
    of_workflow: ColumnElement[bool] = EX.c.workflow_id == w.workflow
    if _sqlite(session):  # ...rather than read every run of the workflow and probe its rows
        of_workflow = func.likely(of_workflow)
    return joined, and_(start, end, of_workflow)


def agent_load(session: Session, w: Window) -> list[AgentLoad]:
    """Per agent, the jobs handed to it in the window, most jobs first."""
    ran = and_(JOBS.c.started_at.is_not(None), JOBS.c.ended_at.is_not(None))
    busy = func.coalesce(func.sum(case((ran, JOBS.c.ended_at - JOBS.c.started_at), else_=0.0)), 0)
    jobs = func.count().label("jobs")
    source, where = _own_time(session, w, JOBS, JOBS.c.created_at)
    rows = session.connection().execute(
        select(
            JOBS.c.agent_id,
            jobs,
            _count_if(JOBS.c.status == JobStatus.COMPLETED.value).label("completed"),
            _count_if(JOBS.c.status.in_(_JOB_FAILED)).label("failed"),
            busy.label("busy"),
        )
        .select_from(source)
        .where(where, JOBS.c.agent_id.is_not(None))
        .group_by(JOBS.c.agent_id)
        .order_by(jobs.desc(), JOBS.c.agent_id)
    )
    return [
        AgentLoad(
            agent_id=r.agent_id,
            jobs=int(r.jobs),
            completed=int(r.completed),
            failed=int(r.failed),
            busy_seconds=float(r.busy),
        )
        for r in rows
    ]


def approval_waits(session: Session, w: Window) -> ApprovalWaits:
    """The approval gates opened in the window and how long people took."""
    source, where = _own_time(session, w, AP, AP.c.opened_at)
    decided = AP.c.decided_at.is_not(None)
    wait = AP.c.decided_at - AP.c.opened_at
    row = (
        session.connection()
        .execute(
            select(
                func.count().label("total"),
                _count_if(AP.c.status == "pending").label("pending"),
                _count_if(decided).label("decided"),
                func.avg(case((decided, wait), else_=None)).label("avg"),
                func.max(case((decided, wait), else_=None)).label("max"),
            )
            .select_from(source)
            .where(where)
        )
        .one()
    )
    waits = select(cast(wait, Float).label("w")).select_from(source).where(where, decided)
    p95 = _percentile(session, waits, P95, int(row.decided))
    return ApprovalWaits(
        total=int(row.total),
        pending=int(row.pending),
        decided=int(row.decided),
        avg_wait=None if row.avg is None else float(row.avg),
        p95_wait=p95,
        max_wait=None if row.max is None else float(row.max),
    )


def analytics(session: Session, w: Window, *, top: int = 10) -> Analytics:
    """Every section for window ``w``, in the caller's (read) transaction."""
    return Analytics(
        window=w,
        summary=summary(session, w),
        daily=daily(session, w),
        top_workflows=top_workflows(session, w, top),
        slowest_steps=slowest_steps(session, w, top),
        agents=agent_load(session, w),
        approvals=approval_waits(session, w),
    )
