"""Step log lines: every stdout/stderr/system line with its per-job sequence number, and for
opsflow's own (system) lines the level its writer gave (info, warn, error).

Lines carry ``seq`` numbered by the agent per job, so a gap between batches (a lost batch) is
stored as a visible system line instead of passing silently. ``id`` orders all lines of an
execution and is what live viewers resume from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsflow.agent.protocol import MAX_BATCH_BYTES as MAX_BATCH_BYTES
from opsflow.agent.protocol import MAX_BATCH_LINES as MAX_BATCH_LINES
from opsflow.agent.protocol import LogLine as LogLine
from opsflow.agent.protocol import level_of as level_of
from opsflow.errors import InvalidInput
from opsflow.status import LogLevel, LogStream
from opsflow.store import jobs as jobs_store
from opsflow.store.base import Base
from opsflow.store.direct import Direct
from opsflow.store.runs import BigId, count_id_range


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
    # LogLevel of a system line; null for program output (and for lines stored before 0012).
    level: Mapped[str | None] = mapped_column(String(5), nullable=True)
    text: Mapped[str] = mapped_column(Text)


LINES: Table = cast(Table, LogLineRow.__table__)


# A batch of log lines is one transaction: at most MAX_BATCH_LINES lines and MAX_BATCH_BYTES
# bytes of text (limits of the agent protocol), so a chatty step never holds the writer for
# long nor builds a huge statement. Agents cut their batches to these limits; ``append``
# refuses a batch over them.

_COLUMNS = ("execution_id", "job_id", "step_id", "seq", "at", "stream", "level", "text")
_SQLITE_INSERT = (
    f"INSERT INTO log_lines ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)
_PG_COPY = f"COPY log_lines ({', '.join(_COLUMNS)}) FROM STDIN"
_PG_ROW = f"({', '.join(['%s'] * len(_COLUMNS))})"
_PG_INSERT = f"INSERT INTO log_lines ({', '.join(_COLUMNS)}) VALUES "
# Below this many rows a PostgreSQL batch goes in as one multi-row ``INSERT`` (one round
# trip); from it on by ``COPY`` (two round trips, but far less per row). Measured on loopback,
# one line: ``INSERT`` 0.07 ms, ``executemany`` (pipelined) 0.15 ms, ``COPY`` 0.18 ms.
PG_COPY_FROM = 32


# execution_id, job_id, step_id, seq, at, stream, level, text (the order of _COLUMNS)
_Row = tuple[str, str, str, int, float, str, str | None, str]


def _stored(stream: LogStream, level: LogLevel | None) -> tuple[str, str | None]:
    stored_level = level_of(stream, level)
    return stream.value, stored_level.value if stored_level else None


# (stream, level) as a line carries them -> the stream and level columns (`level_of`), looked
# up once per line instead of worked out: 200,000 lines of one step go through this loop.
_STORED_AS: dict[tuple[LogStream, LogLevel | None], tuple[str, str | None]] = {
    (stream, level): _stored(stream, level) for stream in LogStream for level in (None, *LogLevel)
}


def batch_bytes(lines: Sequence[LogLine]) -> int:
    """What a batch weighs against ``MAX_BATCH_BYTES``: its text in UTF-8, a byte per line."""
    return sum(
        (len(text) if text.isascii() else len(text.encode("utf-8", "replace"))) + 1
        for _, _, _, text, _ in lines
    )


def append(
    session: Session,
    *,
    job_id: str,
    token: str,
    execution_id: str,
    step_id: str,
    lines: Sequence[LogLine],
    previous: int | None = None,
    recorded: bool = False,
) -> int:
    """Store a batch from the job's current lease holder; returns how many lines were stored.

    A batch whose first seq does not follow the last stored one gets a system line saying
    which lines are missing, so the reader sees the gap. The rows go in as one bulk write,
    never as ORM objects: on PostgreSQL ``COPY``, or for a small batch one multi-row
    ``INSERT`` (one round trip where ``COPY`` takes two); on SQLite ``executemany`` of one
    prepared ``INSERT``. ``previous``: the job's last seq, when this transaction already
    read it from the job's locked row after checking ``token`` (see `jobs_store.bump_seq`);
    with ``recorded`` that statement also stored this batch's last seq (`jobs_store.finish_job`
    with ``last_seq``), so none is written here.
    Raises ``InvalidInput`` for a batch over ``MAX_BATCH_LINES`` or ``MAX_BATCH_BYTES`` and
    ``StaleReport`` when ``token`` is not the job's lease.
    """
    if not lines:
        return 0
    if len(lines) > MAX_BATCH_LINES:
        raise InvalidInput(
            f"lines: a log batch holds at most {MAX_BATCH_LINES} lines, this one {len(lines)}; "
            "send it in several batches"
        )
    size = batch_bytes(lines)
    if size > MAX_BATCH_BYTES:
        raise InvalidInput(
            f"lines: a log batch holds at most {MAX_BATCH_BYTES} bytes, this one {size}; "
            "send it in several batches"
        )
    if not recorded:
        previous = jobs_store.bump_seq(session, job_id, token, lines[-1].seq, previous=previous)
    assert previous is not None, "a recorded seq comes with the one before it"
    rows: list[_Row] = []
    append_row = rows.append
    expected = previous + 1
    stored_as = _STORED_AS
    for seq, at, stream, text, level in lines:
        if seq == expected:  # the common case: the next line
            append_row((execution_id, job_id, step_id, seq, at, *stored_as[stream, level], text))
            expected = seq + 1
            continue
        if seq < expected:
            continue  # a resent line: already stored
        if seq > expected:
            rows.append(
                (
                    execution_id,
                    job_id,
                    step_id,
                    expected,
                    at,
                    LogStream.SYSTEM.value,
                    LogLevel.WARN.value,
                    f"[opsflow] log lines {expected}..{seq - 1} were lost in transit",
                )
            )
        append_row((execution_id, job_id, step_id, seq, at, *stored_as[stream, level], text))
        expected = seq + 1
    if rows:
        _bulk_insert(session, rows)
    return len(rows)


def _bulk_insert(session: Session, rows: list[_Row]) -> None:
    connection = session.connection()
    driver = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        with driver.cursor() as cursor:  # type: ignore[union-attr]
            if len(rows) < PG_COPY_FROM:
                values = ", ".join([_PG_ROW] * len(rows))
                cursor.execute(_PG_INSERT + values, [v for row in rows for v in row])
                return
            with cursor.copy(_PG_COPY) as copy:
                for row in rows:
                    copy.write_row(row)
        return
    cursor = driver.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(_SQLITE_INSERT, rows)
    finally:
        cursor.close()


def count_lines(session: Session, execution_id: str, after_id: int, upto_id: int) -> int:
    """How many lines of the execution have ids in ``(after_id, upto_id]`` (an index range
    count: no row is read)."""
    return count_id_range(session, LINES, execution_id, after_id, upto_id)


_LINES = select(
    LINES.c.id,
    LINES.c.job_id,
    LINES.c.step_id,
    jobs_store.JOBS.c.item,
    LINES.c.seq,
    LINES.c.at,
    LINES.c.stream,
    LINES.c.level,
    LINES.c.text,
).select_from(LINES.outerjoin(jobs_store.JOBS, jobs_store.JOBS.c.id == LINES.c.job_id))
_LINE_NAMES = tuple(c.name for c in _LINES.selected_columns)
_LINES_AFTER = Direct(
    _LINES.where(
        LINES.c.execution_id == bindparam("b_execution"), LINES.c.id > bindparam("b_after")
    )
    .order_by(LINES.c.id)
    .limit(bindparam("b_limit"))
)


def query(
    session: Session,
    execution_id: str,
    *,
    step: str | None = None,
    item: int | None = None,
    stream: str | None = None,
    text: str | None = None,
    after_id: int = 0,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Lines of an execution in order, each with the ``item`` its job runs (null but for a
    fanned-out step's jobs); ``item`` keeps only the lines of that item's jobs. Unfiltered (a
    live stream's read on every wake-up) it is one prebuilt statement."""
    if not step and item is None and not stream and not text:
        rows = _LINES_AFTER.all(
            session, {"b_execution": execution_id, "b_after": after_id, "b_limit": limit}
        )
        return [dict(zip(_LINE_NAMES, row, strict=True)) for row in rows]
    stmt = _LINES.where(LINES.c.execution_id == execution_id, LINES.c.id > after_id)
    jobs = jobs_store.JOBS
    if step:
        stmt = stmt.where(LINES.c.step_id == step)
    if item is not None:
        stmt = stmt.where(jobs.c.item == item)
    if stream:
        stmt = stmt.where(LINES.c.stream == stream)
    if text:
        stmt = stmt.where(LINES.c.text.contains(text, autoescape=True))
    stmt = stmt.order_by(LINES.c.id).limit(limit)
    return [dict(r._mapping) for r in session.connection().execute(stmt)]
