"""Alembic environment: run against the connection `opsflow.store.migrate` hands over.

No logging configuration and no ``alembic.ini`` are read here: the server and the tests call
`opsflow.store.migrate.upgrade(url)`, which supplies the connection.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import JSON, text

from opsflow.store.base import UTCDateTime
from opsflow.store.models import metadata

# Any number of replicas may start at once on one PostgreSQL; one migrates, the others wait.
_PG_MIGRATION_LOCK = 0x0F5F10


def render_item(kind: str, obj: Any, autogen: AutogenContext) -> str | Literal[False]:
    """Spell our column types in plain SQLAlchemy, so migrations never import opsflow code."""
    if kind != "type":
        return False
    if isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if isinstance(obj, JSON):
        autogen.imports.add("from sqlalchemy.dialects import postgresql")
        return 'sa.JSON().with_variant(postgresql.JSONB(), "postgresql")'
    return False


def run_migrations() -> None:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})"))
        context.run_migrations()


run_migrations()
