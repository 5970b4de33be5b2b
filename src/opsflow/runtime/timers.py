"""What falls due: execution timers (retry delays, timeouts) and the leases of lost agents;
and the thread that fires them.

Timers are rows with a due time, so a timer that fell due while the server was down fires at
the next start. Leases are different: an agent cannot heartbeat a server that is down (or
stopped), so a lease that ran out while no sweeper ran is no sign of a lost agent. When the
timer thread starts, or sweeps again after a stall longer than a lease (the process was
stopped, or the database was unreachable), it first gives such leases two leases' time more
(`Timers.resume_leases`); an agent that is really gone loses its attempts that much later,
and one that kept running reports them (its spool holds what it could not deliver
meanwhile).

The thread sleeps until the earliest due time (timer or lease expiry), capped by
``max_sleep`` so timers set by other replicas are seen, and wakes early when this process
sets an earlier timer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from opsflow.runtime.bus import EventBus
from opsflow.runtime.reconciler import Reconciler
from opsflow.runtime.transaction import Transaction, Transactions
from opsflow.store import jobs as jobs_store
from opsflow.store import runs as runs_store
from opsflow.store.db import Database
from opsflow.words import counted

log = logging.getLogger(__name__)


class Timers:
    """Fires due timers and expires lost leases, each in its own transaction."""

    def __init__(
        self,
        db: Database,
        transactions: Transactions,
        reconciler: Reconciler,
        clock: Callable[[], float],
    ) -> None:
        self.db = db
        self.transactions = transactions
        self.reconciler = reconciler
        self.clock = clock

    def fire_due_timers(self) -> int:
        """Reconcile every execution whose timer is due; returns how many fired here."""
        now = self.clock()
        with self.db.read() as session:
            due = runs_store.due_timers(session, now)
        fired = 0
        for kind, key, _ in due:

            def work(tx: Transaction, kind: str = kind, key: str = key) -> bool:
                # Lock order everywhere: the execution first, then its rows (timer, jobs).
                runs_store.lock_execution(tx.session, key)
                if not runs_store.take_timer(tx.session, kind, key, self.clock()):
                    return False  # another replica fired it, or it moved
                self.reconciler.reconcile(tx, key)
                return True

            fired += int(self.transactions.run(work))
        return fired

    def expire_leases(self) -> int:
        """Jobs whose agent stopped heartbeating become failed attempts ("agent lost")."""
        now = self.clock()
        with self.db.read() as session:
            expired = jobs_store.expired_leases(session, now)
        count = 0
        for job_id, execution_id in expired:

            def work(tx: Transaction, job_id: str = job_id, eid: str = execution_id) -> bool:
                runs_store.lock_execution(tx.session, eid)
                if not jobs_store.fail_lost_job(tx.session, job_id, self.clock()):
                    return False
                self.reconciler.reconcile(tx, eid)
                return True

            if self.transactions.run(work):
                count += 1
                log.warning(
                    "job %s of execution %s: agent lost (its lease expired without a report)",
                    job_id,
                    execution_id,
                )
        return count

    def resume_leases(self, grace: float) -> int:
        """Give leases that ran out unwatched (before now) ``grace`` more seconds."""
        now = self.clock()

        def work(tx: Transaction) -> int:
            return jobs_store.resume_lapsed_leases(tx.session, lapsed_before=now, until=now + grace)

        resumed = self.transactions.run(work)
        if resumed:
            log.warning(
                "%s ran out while no server watched them: their agents get %.0fs "
                "more to heartbeat before their attempts count as lost",
                counted(resumed, "lease"),
                grace,
            )
        return resumed

    def next_wake(self) -> float | None:
        """The earliest time something falls due (a timer or a lease), if any."""
        with self.db.read() as session:
            times = [
                t
                for t in (
                    runs_store.next_timer_due(session),
                    jobs_store.next_lease_expiry(session),
                )
                if t is not None
            ]
        return min(times) if times else None


class TimerThread:
    """The thread that fires due timers and expires lost leases (see the module docstring)."""

    def __init__(
        self,
        timers: Timers,
        bus: EventBus,
        *,
        max_sleep: float = 1.0,
        lease_seconds: float | None = None,
    ) -> None:
        self.timers = timers
        self.bus = bus
        self.max_sleep = max_sleep
        # None: never resume leases (tests that drive the clock by hand).
        self.lease_seconds = lease_seconds
        self._last_tick: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="opsflow-timers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.bus.timer_set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def tick(self) -> float:
        """Fire what is due; return how long to sleep."""
        now = self.timers.clock()
        if self.lease_seconds is not None:
            last = self._last_tick
            if last is None or now - last > self.max_sleep + self.lease_seconds:
                # Started, or no sweep succeeded for longer than a lease: stopped (SIGSTOP, a
                # frozen VM) or cut off from the database, when agents could not heartbeat.
                self.timers.resume_leases(2 * self.lease_seconds)
        self.timers.fire_due_timers()
        self.timers.expire_leases()
        self._last_tick = now  # a sweep that succeeded
        wake = self.timers.next_wake()
        if wake is None:
            return self.max_sleep
        return max(0.0, min(self.max_sleep, wake - self.timers.clock()))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self.tick()
            except Exception:
                log.exception("timer tick failed; retrying")
                delay = self.max_sleep
            if delay > 0:
                self.bus.wait_timers(delay, self.timers.clock())
