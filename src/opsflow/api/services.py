"""What the routes share, built once in the lifespan and kept on ``app.state.services``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from opsflow.auth.bootstrap import Bootstrap
from opsflow.config import Settings
from opsflow.store.db import Database
from opsflow.store.session import Session


@dataclass
class Services:
    """The server's parts. ``extra`` holds what lifespan extensions add (the runtime, agents)."""

    settings: Settings
    db: Database
    bootstrap: Bootstrap | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction (commit on success, roll back on error)."""
        with self.db.session() as session:
            yield session


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services
