"""Step log lines: every stdout/stderr/system line with its per-job sequence number.

Lines carry ``seq`` numbered by the agent per job, so a gap between batches (a lost batch) is
stored as a visible system line instead of passing silently. ``id`` orders all lines of an
execution and is what live viewers resume from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Table, Text, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsflow.status import LogStream
from opsflow.store import jobs as jobs_store
from opsflow.store.base import Base
from opsflow.store.runs import BigId


class LogLineRow(Base):
    __tablename__ = "log_lines"
    __table_args__ = (
        Index("ix_log_lines_execution", "execution_id", "id"),
        Index("ix_log_lines_job", "job_id", "seq"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"))
    job_id: Mapped[str] = mapped_column(String(40))
    step_id: Mapped[str] = mapped_column(String(100))
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[float] = mapped_column(Float)
    stream: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)


LINES: Table = cast(Table, LogLineRow.__table__)


@dataclass(frozen=True)
class LogLine:
    seq: int
    at: float
    stream: LogStream
    text: str


def append(
    session: Session,
    *,
    job_id: str,
    token: str,
    execution_id: str,
    step_id: str,
    lines: list[LogLine],
) -> int:
    """Store a batch from the job's current lease holder; returns how many lines were stored.

    A batch whose first seq does not follow the last stored one gets a system line saying
    which lines are missing, so the reader sees the gap.
    """
    if not lines:
        return 0
    previous = jobs_store.bump_seq(session, job_id, token, lines[-1].seq)
    rows: list[dict[str, Any]] = []
    expected = previous + 1
    for line in lines:
        if line.seq < expected:
            continue  # a resent line: already stored
        if line.seq > expected:
            rows.append(
                {
                    "execution_id": execution_id,
                    "job_id": job_id,
                    "step_id": step_id,
                    "seq": expected,
                    "at": line.at,
                    "stream": LogStream.SYSTEM.value,
                    "text": f"[opsflow] log lines {expected}..{line.seq - 1} were lost in transit",
                }
            )
        rows.append(
            {
                "execution_id": execution_id,
                "job_id": job_id,
                "step_id": step_id,
                "seq": line.seq,
                "at": line.at,
                "stream": line.stream.value,
                "text": line.text,
            }
        )
        expected = line.seq + 1
    if rows:
        session.connection().execute(insert(LINES), rows)
    return len(rows)


def query(
    session: Session,
    execution_id: str,
    *,
    step: str | None = None,
    stream: str | None = None,
    text: str | None = None,
    after_id: int = 0,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    stmt = select(
        LINES.c.id,
        LINES.c.job_id,
        LINES.c.step_id,
        LINES.c.seq,
        LINES.c.at,
        LINES.c.stream,
        LINES.c.text,
    ).where(LINES.c.execution_id == execution_id, LINES.c.id > after_id)
    if step:
        stmt = stmt.where(LINES.c.step_id == step)
    if stream:
        stmt = stmt.where(LINES.c.stream == stream)
    if text:
        stmt = stmt.where(LINES.c.text.contains(text, autoescape=True))
    stmt = stmt.order_by(LINES.c.id).limit(limit)
    return [dict(r._mapping) for r in session.connection().execute(stmt)]
