"""Bring a database to the newest schema; the server calls this at start, the tests per backend.

The migration scripts ship inside the package (``opsflow/store/migrations``), so this works
from any working directory and from an installed wheel.

The server does not import Alembic (and Mako) itself: together they weigh about 15 MB that an
idle server would hold for nothing. `ensure_current` reads the database's revision with plain
SQLAlchemy and, only when it is behind the packaged head, migrates in a child process
(``python -m opsflow.store.migrate``, the URL on its standard input, never on a command line).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from opsflow.errors import OpsflowError
from opsflow.store.db import normalize_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# The most of a failed child migration's output a start-up error carries (its last characters).
_OUTPUT_TAIL = 4000


class MigrationFailed(OpsflowError):
    """The child process could not migrate the database; the message holds its output's end."""


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged scripts (no ``alembic.ini`` needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` (the newest by default), in this
    process (Alembic is imported here)."""
    from alembic import command

    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.commit()
    finally:
        engine.dispose()


def head() -> str:
    """The packaged head revision: the highest-numbered script's. Scripts are named
    ``NNNN_what.py``, each with ``revision = "NNNN"`` revising the one before it (a line, no
    branches); `tests/integration/store/test_migrations.py` checks this against Alembic's own
    head."""
    numbers = [p.name.split("_", 1)[0] for p in (MIGRATIONS_DIR / "versions").glob("[0-9]*_*.py")]
    return max(numbers)


def current(url: str) -> str | None:
    """The database's revision (``alembic_version``), or None when it has none yet."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as connection:
            try:
                row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
            except DBAPIError:  # no such table: a new database
                return None
    finally:
        engine.dispose()
    return None if row is None else str(row[0])


def ensure_current(url: str) -> None:
    """Migrate the database at ``url`` to the packaged head unless it is there already, in a
    child process (see the module docstring). Raises `MigrationFailed` with the child's output
    when it fails. Replicas starting together are serialized by the migration itself (a
    PostgreSQL advisory lock, see ``migrations/env.py``)."""
    if current(url) == head():
        return
    package_root = str(Path(__file__).resolve().parents[2])  # the directory holding opsflow/
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    child = subprocess.run(
        [sys.executable, "-m", "opsflow.store.migrate"],
        input=url,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if child.returncode != 0:
        output = (child.stdout + child.stderr).strip()[-_OUTPUT_TAIL:]
        raise MigrationFailed(
            f"migrating the database to revision {head()} failed (exit code "
            f"{child.returncode}):\n{output}"
        )


if __name__ == "__main__":
    upgrade(sys.stdin.read().strip())
