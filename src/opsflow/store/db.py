"""The database handle: one SQLAlchemy engine, tuned per backend.

SQLite (the embedded default) runs in WAL mode with every transaction opened as
``BEGIN IMMEDIATE``: SQLite has one writer at a time, and taking the write lock up front turns
would-be "database is locked" upgrade failures into short waits on ``busy_timeout``. On
PostgreSQL, per-row locks (``SELECT ... FOR UPDATE``) serialize work on one execution and
``SKIP LOCKED`` lets many claimers share the job queue.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and pick the psycopg 3 driver; accept a bare SQLite path."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if "://" not in url:
        return f"sqlite:///{Path(url).resolve()}"
    return url


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Readers (``Database.read``) start deferred: in WAL mode they never wait for the
        # writer, and the writer never waits for them.
        read_only = conn.get_execution_options().get("opsflow_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


# A pooled PostgreSQL connection idle this long (seconds) is pinged before it is handed out;
# one used more recently is not (see `_ping_when_idle`).
PING_IDLE = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's ``pool_pre_ping``, but only for a connection idle `PING_IDLE` seconds.

    The ping is a round trip of its own before every transaction (``;``, 0.1-0.2 ms on a
    quiet loopback, several ms on a loaded machine); a busy runtime reuses its connections
    within milliseconds (the pool hands out the last returned first), where a dead server
    would have broken the previous transaction already. A connection that did die while
    idle is replaced before use, as with ``pool_pre_ping``; one the server dropped within
    the last second fails its transaction with a disconnect error, as one in flight at that
    moment does anyway, and the pool then drops every connection it holds.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["opsflow_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("opsflow_idle_since")
        if since is not None and time.monotonic() - since < PING_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except psycopg.Error as exc:  # the pool drops this one and checks out another
            raise DisconnectionError(str(exc)) from exc


class Database:
    """Owns the engine and hands out sessions; ``dialect`` tells callers what SQL they may use."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalize_url(url)
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_use_lifo=True)
        self.engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            _tune_sqlite(self.engine)
        else:
            _ping_when_idle(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readers = sessionmaker(
            self.engine.execution_options(opsflow_read_only=True), expire_on_commit=False
        )
        # PostgreSQL's autocommit: no BEGIN and COMMIT round trips around a lone read.
        self._lone_readers = (
            self._readers
            if self.is_sqlite
            else sessionmaker(
                self.engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
            )
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: commit on success, roll back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def is_transient(self, exc: BaseException) -> bool:
        """A failure that running the same transaction again can cure: a deadlock or a
        serialization failure on PostgreSQL, a lock wait that ran out on SQLite."""
        if isinstance(exc, OperationalError):
            orig: BaseException | None = exc.orig
        elif isinstance(exc, psycopg.Error):
            orig = exc  # raised by the driver itself (a COPY), not through SQLAlchemy
        else:
            return False
        sqlstate = getattr(orig, "sqlstate", None)
        if sqlstate in ("40P01", "40001", "55P03"):
            return True
        return self.is_sqlite and "database is locked" in str(orig)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A transaction that only reads: on SQLite it takes no write lock, so live viewers
        and API reads never hold up the runtime."""
        with self._readers() as session, session.begin():
            yield session

    @contextmanager
    def read_lone(self) -> Iterator[Session]:
        """Reads that need no snapshot in common (each statement sees what is committed when
        it runs), on a hot path: on PostgreSQL in autocommit mode, which saves the BEGIN and
        COMMIT round trips of `read`; on SQLite the same as `read`."""
        with self._lone_readers() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
