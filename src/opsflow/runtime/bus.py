"""The event bus: wake-up calls after commits, never the data itself.

What happened is always in the database (events, log lines, jobs); the bus only tells waiting
readers *that* something changed, so they read it. A lost wake-up therefore costs latency,
never data, and readers keep a slow fallback poll. Publishing happens after commit, from any
thread; waiters are asyncio tasks or threads. Crossing processes (PostgreSQL LISTEN/NOTIFY
between server replicas) is a second implementation of this same small interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable

ANY = "*"  # subscribe to every execution
FINISHED = "finished:"  # key prefix of the end-of-execution wake-ups


class _Waiter:
    """One waiting reader: an asyncio event on its own loop, set thread-safely."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def wake(self) -> None:
        # Already set: the reader has yet to clear it, and clears it before it reads (see
        # `wait`), so it will see this commit too; a burst of commits costs one hand-over
        # to its loop, not one each (a wide fan-out commits hundreds of times a second).
        if self.event.is_set():
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: the reader is gone
            self.loop.call_soon_threadsafe(self.event.set)

    async def wait(self, timeout: float) -> bool:
        # `asyncio.timeout`, not `wait_for`: no task of its own per wait (every live stream,
        # waiting claim and running job's cancel watcher waits here).
        try:
            async with asyncio.timeout(timeout):
                await self.event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            self.event.clear()


class EventBus:
    """In-process wake-ups for three kinds of readers: live viewers of an execution, agents
    waiting for jobs, and agents running a job that someone asked to cancel."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executions: dict[str, set[_Waiter]] = {}
        self._job_waiters: set[_Waiter] = set()
        self._notification_waiters: set[_Waiter] = set()
        self._cancel_listeners: dict[str, set[_Waiter]] = {}
        self._timer_wake = threading.Event()
        self._planned_wake = 0.0  # when the timer thread means to look next
        # One more per `jobs_queued` (or `wake_everyone`): a claim that found the queue empty
        # when this read N need not look again while it still reads N (see `AgentService`).
        self.jobs_generation = 0
        # Set once the server begins to stop (`stop_waits`): long waits answer now.
        self.stopping = False

    def start(self) -> None:
        """Begin crossing processes (nothing to do in-process)."""

    def stop(self) -> None:
        """Stop crossing processes (nothing to do in-process)."""

    # -- producers (any thread, after commit) -------------------------------------------

    def executions_changed(self, execution_ids: Iterable[str]) -> None:
        with self._lock:
            targets = [w for eid in (*execution_ids, ANY) for w in self._executions.get(eid, ())]
        for w in targets:
            w.wake()

    def workflows_changed(self) -> None:
        """A workflow was created, changed or deleted: wake the readers of every change (the
        global live stream watches `ANY`)."""
        self.executions_changed(())

    def executions_finished(self, execution_ids: Iterable[str]) -> None:
        """Executions that reached a terminal status: for waiters that want only the end."""
        self.executions_changed([f"{FINISHED}{eid}" for eid in execution_ids])

    def watch_finished(self, execution_id: str) -> Subscription:
        return Subscription(self, self._executions, f"{FINISHED}{execution_id}")

    def jobs_queued(self) -> None:
        with self._lock:
            self.jobs_generation += 1
            targets = list(self._job_waiters)
        for w in targets:
            w.wake()

    def cancel_requested(self, job_ids: Iterable[str]) -> None:
        with self._lock:
            targets = [w for jid in job_ids for w in self._cancel_listeners.get(jid, ())]
        for w in targets:
            w.wake()

    def notifications_queued(self) -> None:
        with self._lock:
            targets = list(self._notification_waiters)
        for w in targets:
            w.wake()

    def watch_notifications(self) -> Subscription:
        return Subscription(self, None, "", notifications=True)

    def wake_everyone(self) -> None:
        """Wake every waiter of every kind: after wake-ups may have been lost (a reconnect),
        each reader looks again and finds what it missed in the database."""
        with self._lock:
            self.jobs_generation += 1
            targets = [
                *(w for waiters in self._executions.values() for w in waiters),
                *self._job_waiters,
                *self._notification_waiters,
                *(w for waiters in self._cancel_listeners.values() for w in waiters),
            ]
        for w in targets:
            w.wake()
        self._timer_wake.set()

    def stop_waits(self) -> None:
        """The server begins to stop: wake every waiter, and `stopping` tells the requests that
        wait for news (agents' claims, live streams) to answer or end now. uvicorn waits for
        every open request before it stops: a claim may wait 30 s (``MAX_WAIT_SECONDS``), a
        live stream never ends by itself."""
        self.stopping = True
        self.wake_everyone()

    def timer_set(self, due_at: float | None = None) -> None:
        """A timer was set; wake the timer thread only if it is due before its next look."""
        if due_at is None or due_at < self._planned_wake:
            self._timer_wake.set()

    # -- consumers ----------------------------------------------------------------------

    def watch_execution(self, execution_id: str) -> Subscription:
        return Subscription(self, self._executions, execution_id)

    def watch_jobs(self) -> Subscription:
        return Subscription(self, None, "")

    def watch_cancel(self, job_id: str) -> Subscription:
        return Subscription(self, self._cancel_listeners, job_id)

    def viewers(self) -> int:
        """Live readers of executions (the SSE streams of this process)."""
        with self._lock:
            return sum(
                len(waiters)
                for key, waiters in self._executions.items()
                if not key.startswith(FINISHED)
            )

    def wait_timers(self, timeout: float, now: float) -> None:
        """Block the timer thread until an earlier timer is set or ``timeout`` passes."""
        self._planned_wake = now + timeout
        self._timer_wake.wait(timeout)
        self._timer_wake.clear()
        self._planned_wake = 0.0


class Subscription:
    """``async with bus.watch_...() as sub: await sub.wait(timeout)``."""

    def __init__(
        self,
        bus: EventBus,
        table: dict[str, set[_Waiter]] | None,
        key: str,
        *,
        notifications: bool = False,
    ) -> None:
        self._bus = bus
        self._table = table
        self._flat = bus._notification_waiters if notifications else bus._job_waiters
        self._key = key
        self._waiter: _Waiter | None = None

    async def __aenter__(self) -> Subscription:
        self._waiter = _Waiter()
        with self._bus._lock:
            if self._table is None:
                self._flat.add(self._waiter)
            else:
                self._table.setdefault(self._key, set()).add(self._waiter)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._waiter is not None
        with self._bus._lock:
            if self._table is None:
                self._flat.discard(self._waiter)
            else:
                waiters = self._table.get(self._key)
                if waiters is not None:
                    waiters.discard(self._waiter)
                    if not waiters:
                        del self._table[self._key]

    async def wait(self, timeout: float) -> bool:
        """True when woken, False on timeout."""
        assert self._waiter is not None
        return await self._waiter.wait(timeout)

    def wake(self) -> None:
        """Wake this subscriber (from its own loop; e.g. a write that answered its claim)."""
        if self._waiter is not None:
            self._waiter.event.set()

    def clear(self) -> None:
        """Forget wake-ups received so far."""
        if self._waiter is not None:
            self._waiter.event.clear()
