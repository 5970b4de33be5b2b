"""The /metrics histogram reads are range scans on their own indexes, not whole-table scans:
each statement a scrape runs is EXPLAINed on the database itself (PostgreSQL with sequential
scans priced out, so the plan shows whether an index can serve the query at all)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from opsflow.store import metrics
from opsflow.store.db import Database


def _statement_of(db: Database, read: Callable[[Session], object]) -> tuple[str, Any]:
    """The one SQL statement ``read`` runs, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def on_statement(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    event.listen(db.engine, "before_cursor_execute", on_statement)
    try:
        with db.read() as session:
            read(session)
    finally:
        event.remove(db.engine, "before_cursor_execute", on_statement)
    (found,) = seen
    return found


def _plan(db: Database, statement: str, params: Any) -> str:
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if db.dialect == "postgresql":
            cursor.execute("SET enable_seqscan = off")
            cursor.execute("EXPLAIN (FORMAT JSON) " + statement, params)
            row = cursor.fetchone()
            assert row is not None
            return json.dumps(row[0])
        cursor.execute("EXPLAIN QUERY PLAN " + statement, params)
        return " | ".join(str(row[-1]) for row in cursor.fetchall())
    finally:
        raw.close()


@pytest.mark.parametrize(
    ("index", "read"),
    [
        ("ix_jobs_ended", lambda s: metrics.jobs_ended_between(s, 100.0, 200.0)),
        ("ix_jobs_dispatched", lambda s: metrics.dispatch_delays_between(s, 100.0, 200.0)),
    ],
)
def test_a_metrics_histogram_window_is_read_through_its_index(
    database: Database, index: str, read: Callable[[Session], object]
) -> None:
    statement, params = _statement_of(database, read)
    plan = _plan(database, statement, params)
    assert index in plan, plan
    assert "Seq Scan" not in plan and "SCAN jobs" not in plan, plan
    with database.read() as session:  # the index is the migration's, not only the models'
        names = session.execute(
            text(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'jobs'"
                if database.dialect == "postgresql"
                else "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs'"
            )
        ).scalars()
        assert index in set(names)
