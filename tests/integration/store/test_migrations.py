"""The migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from opsflow.store.db import normalize_url
from opsflow.store.migrate import upgrade
from opsflow.store.models import metadata


def test_alembic_head_equals_the_models(db_url: str) -> None:
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, metadata)
            tables = set(inspect(connection).get_table_names())
    finally:
        engine.dispose()
    assert diff == []
    assert {"users", "workflows", "workflow_versions", "blobs", "audit_log"} <= tables


def test_upgrade_twice_is_a_no_op(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as connection:
            version = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    assert version is not None


def test_packaged_head_is_alembics_and_ensure_current_migrates_in_a_child(db_url: str) -> None:
    """`ensure_current` (what the server runs at start) reads the head from the scripts' names
    without Alembic: it must be Alembic's own head. On a migrated database it does nothing;
    on an empty one it migrates (in a child process) to that head."""
    from alembic.script import ScriptDirectory

    from opsflow.store.migrate import alembic_config, current, ensure_current, head

    assert head() == ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert current(db_url) == head()
    ensure_current(db_url)
    assert current(db_url) == head()


def test_ensure_current_migrates_a_new_database_in_a_child(tmp_path: Path) -> None:
    from opsflow.store.migrate import current, ensure_current, head

    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert current(url) is None
    ensure_current(url)
    assert current(url) == head()


def test_a_failed_child_migration_says_why(tmp_path: Path) -> None:
    """A database at a revision this version does not ship: the child's Alembic error is the
    start-up error."""
    import sqlite3

    from opsflow.store.migrate import MigrationFailed, ensure_current

    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES ('9999')")
    with pytest.raises(MigrationFailed, match="Can't locate revision identified by '9999'"):
        ensure_current(f"sqlite:///{path}")
