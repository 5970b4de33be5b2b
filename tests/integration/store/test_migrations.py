"""The migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

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
