"""Shared fixtures: a fresh, migrated database per test, on SQLite and on PostgreSQL.

Every storage, API and runtime test takes ``db_url`` (or ``database``) and so runs twice, once
per backend. PostgreSQL tests clone a template database that is migrated once per session
(``CREATE DATABASE ... TEMPLATE``), which keeps them isolated and fast. Under ``CI=true`` a
PostgreSQL test that cannot reach its server fails; it never skips.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from opsflow.store.db import Database

PG_ADMIN_URL = os.environ.get("OPSFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = [
    p.strip() for p in os.environ.get("OPSFLOW_TEST_BACKENDS", "sqlite,postgresql").split(",")
]


def _pg_url(dbname: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{dbname}"


def _pg_admin() -> psycopg.Connection[tuple[object, ...]]:
    url = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(url, autocommit=True)


@pytest.fixture(scope="session", autouse=True)
def _warm_launcher() -> Iterator[None]:
    """Ends the warm interpreter `tests.servers.warm_launch` forks servers from, if started."""
    yield
    from tests.servers import end_warm_launcher

    end_warm_launcher()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from opsflow.store.migrate import upgrade

    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@contextmanager
def blank_pg_database(prefix: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database named ``prefix`` + a random suffix (no
    tables: for tests that migrate it themselves or need none), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(name)
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _pg_template() -> Iterator[str]:
    from opsflow.store.migrate import upgrade

    name = f"opsflow_tpl_{os.getpid()}"
    try:
        conn = _pg_admin()
    except Exception as exc:  # pragma: no cover - depends on the machine
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI=true and is unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    with conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    upgrade(_pg_url(name))
    yield name
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of a fresh, fully migrated database of each backend."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "opsflow.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    template_name: str = request.getfixturevalue("_pg_template")
    name = f"opsflow_t_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    yield _pg_url(name)
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    """A ``Database`` on a fresh database of each backend."""
    db = Database(db_url)
    yield db
    db.dispose()
