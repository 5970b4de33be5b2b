"""Driver errors translated once, at the store's edge: a unique violation becomes `Conflict`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError

from opsflow.errors import Conflict

_PG_UNIQUE_VIOLATION = "23505"
_SQLITE_UNIQUE = {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}


def is_unique_violation(exc: IntegrityError) -> bool:
    """Whether the driver said "duplicate key" (other integrity errors are bugs, not conflicts)."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == _PG_UNIQUE_VIOLATION:
        return True
    return getattr(orig, "sqlite_errorname", None) in _SQLITE_UNIQUE


@contextmanager
def conflict_on_duplicate(message: str) -> Iterator[None]:
    """Turn a unique violation raised inside the block (flush it there) into ``Conflict``."""
    try:
        yield
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise Conflict(message) from exc
        raise
