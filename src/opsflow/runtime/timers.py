"""The timer thread: fires due timers and expires lost leases.

Timers are rows with a due time, so a timer that fell due while the server was down fires at
the next start. The thread sleeps until the earliest due time (timer or lease expiry), capped
by ``max_sleep`` so timers set by other replicas are seen, and wakes early when this process
sets an earlier timer.
"""

from __future__ import annotations

import logging
import threading

from opsflow.runtime.service import Runtime

log = logging.getLogger(__name__)


class TimerThread:
    """The thread that fires due timers and expires lost leases (see the module docstring)."""

    def __init__(self, runtime: Runtime, *, max_sleep: float = 1.0) -> None:
        self.runtime = runtime
        self.max_sleep = max_sleep
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="opsflow-timers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.runtime.bus.timer_set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def tick(self) -> float:
        """Fire what is due; return how long to sleep."""
        self.runtime.fire_due_timers()
        self.runtime.expire_leases()
        wake = self.runtime.next_wake()
        if wake is None:
            return self.max_sleep
        return max(0.0, min(self.max_sleep, wake - self.runtime.clock()))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self.tick()
            except Exception:
                log.exception("timer tick failed; retrying")
                delay = self.max_sleep
            if delay > 0:
                self.runtime.bus.wait_timers(delay, self.runtime.clock())
