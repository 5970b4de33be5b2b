"""PostgreSQL's pool pings a connection before handing it out only when it sat idle for
`PING_IDLE` seconds: a connection the server dropped while idle is replaced unseen, and one
used a moment ago is handed out without a round trip of its own."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from opsflow.store import db as db_module
from opsflow.store.db import Database
from tests.conftest import BACKENDS, blank_pg_database

pytestmark = pytest.mark.skipif(
    "postgresql" not in BACKENDS, reason="the ping is PostgreSQL's: SQLite has no server"
)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """An empty PostgreSQL database (the ping needs no tables)."""
    with blank_pg_database("opsflow_ping") as url:
        yield url


def _backend_pid(database: Database) -> int:
    with database.session() as session:
        return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_an_idle_connection_the_server_dropped_is_replaced_before_use(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "PING_IDLE", 0.05)
    database = Database(pg_url)
    try:
        first = _backend_pid(database)
        _terminate(pg_url, first)
        time.sleep(0.1)  # idle longer than PING_IDLE: pinged, found dead, replaced
        assert _backend_pid(database) != first
    finally:
        database.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "PING_IDLE", 60.0)
    database = Database(pg_url)
    try:
        first = _backend_pid(database)
        _terminate(pg_url, first)
        # Not pinged: its transaction meets the dropped connection, as one in flight would;
        # the pool then drops its connections and the next transaction gets a fresh one.
        with pytest.raises(OperationalError):
            _backend_pid(database)
        assert _backend_pid(database) != first
    finally:
        database.dispose()
