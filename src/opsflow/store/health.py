"""Is the database there? For ``/readyz``."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from opsflow.store.db import Database


def ping(db: Database) -> str | None:
    """None when a trivial query succeeds, else the driver's message (for the probe's body)."""
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return str(exc.__cause__ or exc).splitlines()[0]
    return None
