"""The event bus across server replicas: PostgreSQL LISTEN/NOTIFY under the in-process bus.

Every wake-up is delivered locally first (as `EventBus` does), then its key is queued for the
other replicas. A sender thread sends what is queued as one ``pg_notify`` statement per batch:
keys queued while the previous batch was in flight are deduplicated into the next one, so a hot
execution costs a notification per round trip, not one per change. A listener thread holds its
own connection in ``LISTEN`` and wakes the local waiters a notification names; notifications
this process sent itself are skipped (its waiters were woken already).

Both threads reconnect with backoff when PostgreSQL goes away. Wake-ups sent or due while the
listener was disconnected are lost, which costs latency only (the data is in the database):
on every (re)connect the listener wakes every local waiter, so each reader looks again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import psycopg
from sqlalchemy.engine import make_url

from opsflow.runtime.bus import ANY, EventBus

log = logging.getLogger(__name__)

CHANNEL = "opsflow_wake"
# A batch with more distinct keys than this is sent as one "wake everyone" key instead.
MAX_KEYS = 500
BACKOFF_MIN = 0.2
BACKOFF_MAX = 5.0
POLL_SECONDS = 1.0  # how often the listener checks whether it was asked to stop

# Notification payloads: "<kind>:<key>"; the kinds mirror the bus's producers.
EXECUTION = "e"  # an execution key: an execution id, `ANY`, or a `FINISHED`-prefixed id
JOBS = "j"
CANCEL = "c"  # a job id
NOTIFICATIONS = "n"
EVERYONE = "*"


def conninfo(sqlalchemy_url: str) -> str:
    """A libpq connection string for the database a SQLAlchemy URL names."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class PostgresBus(EventBus):
    """`EventBus` whose wake-ups also reach the other processes on the same database."""

    def __init__(self, sqlalchemy_url: str) -> None:
        super().__init__()
        self._conninfo = conninfo(sqlalchemy_url)
        self._outgoing: set[str] = set()
        self._outgoing_lock = threading.Lock()
        self._send_wanted = threading.Event()
        self._stopping = threading.Event()
        self._sender_pid: int | None = None  # backend pid of our sending connection
        self._threads: list[threading.Thread] = []
        self.connected = threading.Event()  # the listener is listening (tests wait on it)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        for target, name in ((self._listen, "listen"), (self._send, "notify")):
            thread = threading.Thread(target=target, name=f"opsflow-bus-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        self._send_wanted.set()
        for thread in self._threads:
            thread.join(timeout=POLL_SECONDS + 5)
        self._threads.clear()

    # -- producers: local first, then queued for the other replicas ---------------------

    def executions_changed(self, execution_ids: Iterable[str]) -> None:
        ids = list(execution_ids)
        super().executions_changed(ids)
        self._queue([f"{EXECUTION}:{eid}" for eid in ids] or [f"{EXECUTION}:{ANY}"])

    def jobs_queued(self) -> None:
        super().jobs_queued()
        self._queue([JOBS])

    def cancel_requested(self, job_ids: Iterable[str]) -> None:
        ids = list(job_ids)
        super().cancel_requested(ids)
        self._queue([f"{CANCEL}:{jid}" for jid in ids])

    def notifications_queued(self) -> None:
        super().notifications_queued()
        self._queue([NOTIFICATIONS])

    # (Timers are not sent: every replica's timer thread looks at least once a second.)

    def _queue(self, keys: list[str]) -> None:
        if not keys:
            return
        with self._outgoing_lock:
            self._outgoing.update(keys)
        self._send_wanted.set()

    # -- receiving ----------------------------------------------------------------------

    def deliver(self, payload: str) -> None:
        """Wake the local waiters one notification names (never re-sent)."""
        kind, _, key = payload.partition(":")
        if kind == EXECUTION:
            EventBus.executions_changed(self, [key])
        elif kind == JOBS:
            EventBus.jobs_queued(self)
        elif kind == CANCEL:
            EventBus.cancel_requested(self, [key])
        elif kind == NOTIFICATIONS:
            EventBus.notifications_queued(self)
        elif kind == EVERYONE:
            self.wake_everyone()
        else:
            log.warning("bus: ignoring an unknown notification %r", payload)

    # -- the threads --------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            self._conninfo, autocommit=True, connect_timeout=5, keepalives=1, keepalives_idle=10
        )

    def _listen(self) -> None:
        backoff = BACKOFF_MIN
        while not self._stopping.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    backoff = BACKOFF_MIN
                    # Whatever was sent while we were not listening is lost: look again.
                    self.wake_everyone()
                    while not self._stopping.is_set():
                        for note in conn.notifies(timeout=POLL_SECONDS):
                            if note.pid != self._sender_pid:
                                self.deliver(note.payload)
            except psycopg.Error as exc:
                self.connected.clear()
                log.warning("bus: listening connection lost (%s); again in %.1fs", exc, backoff)
                self._stopping.wait(backoff)
                backoff = min(BACKOFF_MAX, backoff * 2)
        self.connected.clear()

    def _take_batch(self) -> list[str]:
        with self._outgoing_lock:
            keys, self._outgoing = self._outgoing, set()
            self._send_wanted.clear()
        return [EVERYONE] if len(keys) > MAX_KEYS else sorted(keys)

    def _send(self) -> None:
        backoff = BACKOFF_MIN
        conn: psycopg.Connection[tuple[object, ...]] | None = None
        while not self._stopping.is_set():
            self._send_wanted.wait()
            batch = self._take_batch()
            if not batch or self._stopping.is_set():
                continue
            # A connection that went stale (PostgreSQL restarted while we were idle) fails on
            # first use: the batch is tried once more on a fresh one before it is given up.
            for attempt in (1, 2):
                try:
                    if conn is None or conn.closed:
                        conn = self._connect()
                        self._sender_pid = conn.info.backend_pid
                    # One statement, one transaction: every key of the batch in one round trip.
                    conn.execute(
                        "SELECT pg_notify(%s, k) FROM unnest(%s::text[]) AS k", (CHANNEL, batch)
                    )
                    backoff = BACKOFF_MIN
                    break
                except psycopg.Error as exc:
                    if conn is not None:
                        conn.close()
                    conn = None
                    if attempt == 2:
                        # Given up: the listeners wake everyone when they reconnect.
                        log.warning("bus: could not notify (%s); again in %.1fs", exc, backoff)
                        self._stopping.wait(backoff)
                        backoff = min(BACKOFF_MAX, backoff * 2)
        if conn is not None:
            conn.close()


def bus_for(db_dialect: str, sqlalchemy_url: str) -> EventBus:
    """The bus for a database: across processes on PostgreSQL, in-process on SQLite."""
    if db_dialect == "postgresql":
        return PostgresBus(sqlalchemy_url)
    return EventBus()
