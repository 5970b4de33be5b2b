"""A reconcile's writes, gathered and sent together: on PostgreSQL in one statement.

A job's end changes a few rows of its execution: the ended step and the next one
(``execution_steps``), the next step's job (``jobs``), the engine log's lines and the events.
Sent one by one they are five or more round trips, each a wait for the database and, on a
busy server, for the CPU. `Writes` gathers them while the reconcile decides; `write` sends
them as one statement of data-modifying CTEs on PostgreSQL (each sub-statement runs once,
on its own rows, all in the statement's snapshot, so their order does not matter: no two
touch the same row, and each step's changes are merged into one ``UPDATE``). SQLite has no
data-modifying CTEs: there they go as today, one statement each (an ``executemany`` for the
log lines and events).

Whoever gathers must `write` before reading or writing these rows otherwise (the reconcile
does, see ``runtime.reconciler._Run.settle``), and before the commit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, bindparam, column, func, insert, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.dml import Insert, Update

from opsflow.store import jobs as jobs_store
from opsflow.store import runs as runs_store
from opsflow.store.direct import Direct
from opsflow.store.jobs import JOBS
from opsflow.store.runs import ELOG, EV, ST
from opsflow.store.session import Session


@dataclass
class Writes:
    """Rows to write: per (execution, step) the columns to set (merged, latest value wins),
    jobs to insert (``jobs_store.insert_job``'s values), engine log lines and events
    (``runs_store.add_engine_log``'s and ``add_events``' rows), in their order."""

    steps: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    engine_log: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def set_step(self, execution_id: str, step_id: str, values: dict[str, Any]) -> None:
        self.steps.setdefault((execution_id, step_id), {}).update(values)

    def __bool__(self) -> bool:
        return bool(self.steps or self.jobs or self.engine_log or self.events)

    def clear(self) -> None:
        self.steps.clear()
        self.jobs.clear()
        self.engine_log.clear()
        self.events.clear()


# Above this many steps the writes go one statement each (as on SQLite): a run's first
# reconcile may start thousands of steps, each its own ``UPDATE``. A chain step's end writes
# 2 steps, 1 job, 2 engine log lines and 6 events.
MOST_STEPS = 16


def write(session: Session, writes: Writes) -> None:
    """Send ``writes`` in ``session``'s transaction (one statement on PostgreSQL unless they
    change many steps), then empty it."""
    if not writes:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql" or len(writes.steps) > MOST_STEPS:
        _one_by_one(session, writes)
        return
    jobs = [jobs_store.with_defaults(values) for values in writes.jobs]
    job_columns = tuple(sorted({name for row in jobs for name in row}))
    shape = (
        tuple(tuple(values) for values in writes.steps.values()),
        job_columns,
        bool(writes.engine_log),
        bool(writes.events),
    )
    params: dict[str, Any] = {"j_rows": jobs, "l_rows": writes.engine_log, "e_rows": writes.events}
    for i, ((execution_id, step_id), values) in enumerate(writes.steps.items()):
        params[f"s{i}_b_execution"] = execution_id
        params[f"s{i}_b_step"] = step_id
        params.update({f"s{i}_{name}": value for name, value in values.items()})
    _statement(shape).run(session, params)
    writes.clear()


def _one_by_one(session: Session, writes: Writes) -> None:
    for (execution_id, step_id), values in writes.steps.items():
        runs_store.update_step(session, execution_id, step_id, **values)
    for values in writes.jobs:
        jobs_store.insert_job(session, values)
    runs_store.add_engine_log(session, writes.engine_log)
    runs_store.add_events(session, writes.events)
    writes.clear()


_Shape = tuple[tuple[tuple[str, ...], ...], tuple[str, ...], bool, bool]
_LOG_COLUMNS = ("execution_id", "step_id", "at", "message")
_EVENT_COLUMNS = ("execution_id", "at", "kind", "data")


@functools.lru_cache(maxsize=256)
def _statement(shape: _Shape) -> Direct:
    """The one statement for writes of this shape: an ``UPDATE`` per step, a named
    parameter per value; the rows of each table as one JSON array parameter, turned into
    rows by ``jsonb_to_recordset`` (in their order: the events' ids follow it). Built and
    compiled once per shape (a multi-row ``VALUES`` would be compiled again on every call),
    sent straight to the driver (`Direct`), which prepares it after a few uses; a shape does
    not depend on how many rows there are."""
    steps, job_columns, logs, events = shape
    parts: list[Insert | Update] = [
        update(ST)
        .where(
            ST.c.execution_id == bindparam(f"s{i}_b_execution"),
            ST.c.step_id == bindparam(f"s{i}_b_step"),
        )
        .values({name: bindparam(f"s{i}_{name}", type_=ST.c[name].type) for name in columns})
        for i, columns in enumerate(steps)
    ]
    for name, table, columns in (
        ("j_rows", JOBS, job_columns),
        ("l_rows", ELOG, _LOG_COLUMNS if logs else ()),
        ("e_rows", EV, _EVENT_COLUMNS if events else ()),
    ):
        if columns:
            parts.append(_insert_rows(table, columns, name))
    statement = parts.pop()
    if parts:
        statement = statement.add_cte(*(part.cte(f"w{i}") for i, part in enumerate(parts)))
    return Direct(statement)


def _insert_rows(table: Table, columns: tuple[str, ...], parameter: str) -> Insert:
    """``INSERT INTO table (columns) SELECT columns FROM jsonb_to_recordset(:parameter)``."""
    rows = (
        func.jsonb_to_recordset(bindparam(parameter, type_=JSONB))
        .table_valued(*(column(name, table.c[name].type) for name in columns))
        .render_derived(with_types=True)
    )
    return insert(table).from_select(list(columns), select(*(rows.c[name] for name in columns)))
