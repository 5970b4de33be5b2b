"""Keep moves into a cgroup fast: a no-op migration every few milliseconds while steps run.

Every step's program enters a fresh cgroup v2 (`scope.CgroupScope`): its wrapper ``sh`` writes
its pid to the new cgroup's ``cgroup.procs``. In the kernel that write takes
``cgroup_threadgroup_rwsem`` for writing (``cgroup_attach_lock``, kernel/cgroup/cgroup.c), a
per-CPU rw-semaphore whose writer first switches readers to the slow path through
``rcu_sync_enter`` (kernel/rcu/sync.c) and waits for an RCU grace period — unless the rcu_sync
is still active from a writer less than about one grace period ago, when it goes straight on.
Chain steps are 30-70 ms apart, so each step's move paid a whole grace period: 6-15 ms of
every step on this machine (benchmarks/README.md, "What bounds a step now").

`MigrationWarmer` writes this process's own pid to its own cgroup's ``cgroup.procs`` every
`PERIOD` seconds: a migration to the cgroup the process is already in, which moves nothing but
still takes the semaphore for writing and so keeps rcu_sync active. It writes while a step's
cgroup is open and for `LINGER` seconds after the last one closed (a chain's next step starts a
few milliseconds after the previous one ended), then waits on a condition (no CPU, no wake-up)
until the next one opens. Measured on kernel 6.18 (2 cores, a 150 MB Python parent): the wrapped
``sh`` 2.7-4.9 ms with the warmer, 11.7-16 ms without (a plain ``sh -c 'exec true'`` 1.9-2.4
ms); periods of 2-50 ms worked alike, 100 ms only halved the wait, 200 ms did nothing. Its cost
while writing: the write itself about 0.07 ms (median), and 4-6 ms of CPU per second for the
thread, i.e. 0.4-0.6 % of one core (27 wake-ups a second, 0.15-0.2 ms each with Python's;
the thread's CPU time, ``time.thread_time`` and ``/proc/self/task/<tid>/schedstat`` over
5 s, at load 2 and 13); idle, none. While it is warm every fork and exit on the machine takes
the semaphore's slower read path (a full memory barrier, and a wait while a writer holds it),
the trade ``favordynmods`` makes too.

Why not the alternatives: mounting cgroup2 with ``favordynmods`` (Linux >= 6.0,
Documentation/admin-guide/cgroup-v2.rst) keeps rcu_sync active for good, but the mount is the
host's, not the agent's; starting the program straight in its cgroup (``clone3`` with
``CLONE_INTO_CGROUP``) skips the migration, but Python's ``subprocess`` cannot, and glibc's
``pidfd_spawn`` with ``posix_spawnattr_setcgroup_np`` needs glibc >= 2.39 (2.36 here).

The write needs what moving a step's process into its cgroup already needs (write access to
this cgroup's ``cgroup.procs``, the common ancestor), so it works wherever `CgroupScope` does;
if the kernel refuses it anyway, the warmer says so once and stops: steps then pay the wait, and
never fail because of it. Its thread is a daemon (it never keeps the process alive), forgets
itself in a forked child, and `rest` / `stop` end its writing at once (the agent rests it when
it stops, the interpreter stops it at exit).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

PERIOD = 0.025  # seconds between two writes while warm (2-50 ms measured to work)
LINGER = 1.5  # seconds of writing after the last step cgroup closed
_IN_FLIGHT_WAIT = 1.0  # how long rest/stop wait for a write already under way


class MigrationWarmer:
    """Writes this process's pid to ``procs`` (its own cgroup's ``cgroup.procs``) every
    ``period`` seconds while a scope holds it and for ``linger`` seconds after the last
    release, from one daemon thread started at the first `hold`. Thread-safe; no method raises
    because of the kernel (a refused write disables the warmer, see `disabled`)."""

    def __init__(self, procs: Path, *, period: float = PERIOD, linger: float = LINGER) -> None:
        self.procs = procs
        self.period = period
        self.linger = linger
        self._cond = threading.Condition()
        self._held = 0
        self._until = 0.0  # monotonic time the linger ends
        self._writing = False
        self._idle = True
        self._stopped = False
        self._disabled = False
        self._writes = 0
        self._thread: threading.Thread | None = None

    @property
    def writes(self) -> int:
        """Migrations written so far (each one the kernel accepted)."""
        return self._writes

    @property
    def disabled(self) -> bool:
        """The kernel refused a write: the warmer wrote its warning and writes no more."""
        return self._disabled

    @property
    def idle(self) -> bool:
        """No write under way and none due: nothing held and the linger over (or stopped, or
        disabled)."""
        with self._cond:
            return not self._writing and (self._stopped or self._disabled or not self._due())

    @property
    def thread(self) -> threading.Thread | None:
        """The writing thread, once started."""
        return self._thread

    def hold(self) -> None:
        """A step's cgroup was opened: write from now on (starts the thread the first time)."""
        with self._cond:
            self._held += 1
            if self._stopped or self._disabled:
                return
            if self._thread is None:
                self._idle = False
                self._thread = threading.Thread(
                    target=self._run, name="opsflow-cgroup-migration-warmer", daemon=True
                )
                self._thread.start()
            elif self._idle:
                self._cond.notify_all()

    def release(self) -> None:
        """A step's cgroup was closed: keep writing for ``linger`` seconds after the last."""
        with self._cond:
            self._held = max(0, self._held - 1)
            if not self._held:
                self._until = time.monotonic() + self.linger

    def rest(self) -> None:
        """End the linger now: no write starts after this returns unless a scope is still held
        (or one is opened again). Blocks until a write under way is done (at most a grace
        period)."""
        with self._cond:
            self._until = 0.0
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._writing, _IN_FLIGHT_WAIT)

    def stop(self) -> None:
        """Stop for good (the process is exiting): no write starts after this returns."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._writing, _IN_FLIGHT_WAIT)

    def _due(self) -> bool:
        return bool(self._held) or time.monotonic() < self._until

    def _run(self) -> None:
        pid = str(os.getpid()).encode()
        while True:
            with self._cond:
                while not self._stopped and not self._disabled and not self._due():
                    self._idle = True
                    self._cond.wait()  # until a hold, a rest or a stop: no CPU meanwhile
                if self._stopped or self._disabled:
                    self._idle = True
                    return
                self._idle = False
                self._writing = True
            try:
                written = self._write(pid)
            finally:
                with self._cond:
                    self._writing = False
                    self._cond.notify_all()
            if not written:
                return
            with self._cond:
                # A notify (rest, stop) ends the pause early; the loop's checks decide what next.
                self._cond.wait(self.period)

    def _write(self, pid: bytes) -> bool:
        try:
            fd = os.open(self.procs, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        except OSError as exc:
            with self._cond:
                self._disabled = True
                self._idle = True
            log.warning(
                "cannot keep cgroup migrations fast (writing %s: %s): each step's move into its "
                "cgroup waits for an RCU grace period (mounting cgroup2 with favordynmods "
                "avoids the wait)",
                self.procs,
                exc.strerror or exc,
            )
            return False
        self._writes += 1
        return True
