"""One database transaction of the runtime, and the runner that commits it and then publishes.

Every service of the runtime (``executions``, ``agent_jobs``, ``control``, ``timers``) does its
work through ``Transactions.run``: the work gets a ``Transaction`` (the session and what it
changed, ``Changes``) and hands that same object to its collaborators (the reconciler,
admission), so everything one request changes commits together, and the wake-ups go out only
after the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy.orm import Session

from opsflow.runtime.bus import EventBus
from opsflow.runtime.changes import Changes
from opsflow.store.db import Database

T = TypeVar("T")
log = logging.getLogger(__name__)

ATTEMPTS = 3  # a transaction the database aborted (deadlock, lock wait) is run again


@dataclass
class Transaction:
    """The session of one transaction and what it changed (to publish after the commit)."""

    session: Session
    changes: Changes = field(default_factory=Changes)


class Transactions:
    """Runs work in one transaction and publishes its changes on ``bus`` once committed."""

    def __init__(self, db: Database, bus: EventBus) -> None:
        self.db = db
        self.bus = bus

    def run(self, fn: Callable[[Transaction], T]) -> T:
        """Run ``fn`` in one transaction, publish its changes after the commit.

        A transaction the database aborted to break a deadlock (or a SQLite lock wait that
        ran out) is run again from the start, a few times, before the error is let through.
        """
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self.db.session() as session:
                    tx = Transaction(session)
                    result = fn(tx)
            except Exception as exc:
                if attempt < ATTEMPTS and self.db.is_transient(exc):
                    log.warning("transaction aborted (%s); retrying", exc.__class__.__name__)
                    continue
                raise
            self.publish(tx.changes)
            return result
        raise AssertionError("unreachable")

    def publish(self, changes: Changes) -> None:
        """Wake whoever waits on what ``changes`` touched (after its commit)."""
        if changes.executions:
            self.bus.executions_changed(changes.executions)
        if changes.finished:
            self.bus.executions_finished(changes.finished)
        if changes.jobs_queued:
            self.bus.jobs_queued()
        if changes.cancelled_jobs:
            self.bus.cancel_requested(changes.cancelled_jobs)
        if changes.notifications:
            self.bus.notifications_queued()
        if changes.earliest_timer is not None:
            self.bus.timer_set(changes.earliest_timer)
