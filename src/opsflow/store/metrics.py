"""What ``/metrics`` reads from the database on a scrape: a few GROUP BY counts and the jobs
that were dispatched or ended since the previous scrape (for the histograms).

The two histogram reads are range scans on their own covering indexes (``ix_jobs_ended``,
``ix_jobs_dispatched``, migration 0019): a scrape reads the jobs of its window only, however
many jobs the table holds."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Index, and_, func, select
from sqlalchemy.orm import Session

from opsflow.status import JobStatus
from opsflow.store.jobs import JOBS
from opsflow.store.runs import EX

Index(
    "ix_jobs_ended",
    JOBS.c.ended_at, JOBS.c.started_at, JOBS.c.purpose, JOBS.c.type, JOBS.c.status,
)  # fmt: skip
Index("ix_jobs_dispatched", JOBS.c.dispatched_at, JOBS.c.created_at)


def executions_by_status(session: Session) -> dict[str, int]:
    """How many executions are in each status (the executions' status index)."""
    rows = session.execute(select(EX.c.status, func.count()).group_by(EX.c.status))
    return {str(status): int(n) for status, n in rows}


def queued_jobs_by_pool(session: Session) -> dict[str, int]:
    """Jobs waiting for an agent, per pool (the queue index)."""
    rows = session.execute(
        select(JOBS.c.pool, func.count())
        .where(JOBS.c.status == JobStatus.PENDING.value)
        .group_by(JOBS.c.pool)
    )
    return {str(pool): int(n) for pool, n in rows}


@dataclass(frozen=True)
class EndedJob:
    """A job that ran and ended: its step type, how it ended, and how long it ran."""

    type: str
    status: str
    seconds: float


def jobs_ended_between(session: Session, after: float, until: float) -> list[EndedJob]:
    """Attempts that ran (``started_at`` set) and ended in ``(after, until]``."""
    rows = session.execute(
        select(JOBS.c.type, JOBS.c.status, JOBS.c.started_at, JOBS.c.ended_at).where(
            and_(
                JOBS.c.ended_at > after,
                JOBS.c.ended_at <= until,
                JOBS.c.started_at.is_not(None),
                JOBS.c.purpose == "run",
            )
        )
    )
    return [EndedJob(str(t), str(s), max(0.0, end - start)) for t, s, start, end in rows]


def dispatch_delays_between(session: Session, after: float, until: float) -> list[float]:
    """Seconds from queued to handed to an agent, of jobs dispatched in ``(after, until]``."""
    rows = session.execute(
        select(JOBS.c.created_at, JOBS.c.dispatched_at).where(
            and_(JOBS.c.dispatched_at > after, JOBS.c.dispatched_at <= until)
        )
    )
    return [max(0.0, dispatched - created) for created, dispatched in rows]
