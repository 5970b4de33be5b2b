"""The scheduler thread: fires schedule triggers at their instants.

It sleeps until the earliest ``next_due_at`` of any live schedule (one indexed query, not a
look at every workflow), capped by ``max_sleep`` so that schedules other replicas publish are
seen, and is woken early when this process publishes, resumes or enables something. For each
due schedule it asks `schedule.plan` which instants to fire, fires each through
`opsflow.triggers.fire.fire` with the instant's row in ``trigger_fires`` as its claim, and
moves ``next_due_at`` on with a compare-and-set. Any number of replicas may do this at once:
the unique (trigger, instant) key lets exactly one of them start each instant's run, and
nothing they hold (no lock, no lease) can be lost with a process.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from opsflow.errors import InvalidInput, OpsflowError
from opsflow.runtime.service import Runtime
from opsflow.spec.triggers import TriggerType
from opsflow.store import triggers as store
from opsflow.store.session import Session
from opsflow.store.triggers import Trigger
from opsflow.triggers import schedule
from opsflow.triggers.cron import CronNeverFires
from opsflow.triggers.fire import Event, TriggerRefused, fire
from opsflow.words import counted

if TYPE_CHECKING:
    from opsflow.api.services import Services

log = logging.getLogger(__name__)

SCHEDULER_KEY = "scheduler"  # services.extra[SCHEDULER_KEY]: the server's Scheduler

TYPES = (TriggerType.SCHEDULE.value,)
# Refusals for which an instant is simply not fired (docs/triggers/schedule.md): someone
# paused the workflow or switched the schedule off, so no "not started" replaces the last run.
QUIET_REFUSALS = frozenset({"paused", "disabled"})
RETRY_AFTER = 5.0  # real seconds before a schedule whose handling failed is tried again


@dataclass(frozen=True)
class SchedulerClock:
    """What time it is for schedules. Real time by default; a test clock stands at ``start``
    until real time reaches ``anchor``, then runs ``rate`` times as fast (so a test can set up
    before its clock moves, then cross a DST change or hundreds of instants in seconds)."""

    start: float | None = None
    anchor: float = 0.0
    rate: float = 1.0

    @classmethod
    def parse(cls, text: str | None) -> SchedulerClock:
        """From ``START[,RATE[,ANCHOR]]``: START an ISO 8601 instant, RATE a factor (1),
        ANCHOR the real epoch second at which the clock reads START (default: now)."""
        if not text:
            return cls()
        parts = [p.strip() for p in text.split(",")]
        start = datetime.fromisoformat(parts[0].replace("Z", "+00:00"))
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        rate = float(parts[1]) if len(parts) > 1 and parts[1] else 1.0
        anchor = float(parts[2]) if len(parts) > 2 and parts[2] else time.time()
        if not rate > 0:
            raise ValueError(f"scheduler clock rate must be positive, not {rate}")
        return cls(start.timestamp(), anchor, rate)

    def now(self) -> float:
        real = time.time()
        if self.start is None:
            return real
        return self.start + max(0.0, real - self.anchor) * self.rate

    def real_seconds(self, seconds: float) -> float:
        """How long ``seconds`` of this clock's time take in real time."""
        return seconds / self.rate


class Scheduler:
    """One per server process; `start` and `stop` from the server's lifespan."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        clock: SchedulerClock | None = None,
        max_sleep: float = 10.0,
    ) -> None:
        self.runtime = runtime
        self.clock = clock or SchedulerClock()
        self.max_sleep = max_sleep
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="opsflow-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def wake(self) -> None:
        """Look at the schedules now (a wake time may have moved earlier)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self.tick()
            except Exception:
                log.exception("scheduler tick failed; retrying")
                delay = self.max_sleep
            if delay > 0:
                self._wake.wait(delay)
            self._wake.clear()

    def tick(self) -> float:
        """Fire every due schedule; return how long (real seconds) to sleep."""
        now = self.clock.now()
        with self.runtime.db.read() as session:
            due = store.due(session, now, types=TYPES)
        failed = False
        for trigger in due:
            try:
                self._handle(trigger, now)
            except Exception:
                # One schedule's failure (the database gone for a moment) must not hold up
                # the others; it stays due and is tried again after a pause.
                log.exception(
                    "schedule %s of workflow %s failed", trigger.name, trigger.workflow_id
                )
                failed = True
        with self.runtime.db.read() as session:
            wake = store.next_due(session, types=TYPES)
        if wake is None:
            return self.max_sleep
        delay = max(0.0, min(self.max_sleep, self.clock.real_seconds(wake - self.clock.now())))
        return max(delay, RETRY_AFTER) if failed else delay

    def _handle(self, trigger: Trigger, now: float) -> None:
        assert trigger.next_due_at is not None
        spec = trigger.spec
        timezone = str(spec.get("timezone") or "UTC")
        # "Late" is about real time (a server down), also when a test clock runs fast.
        late_after = schedule.LATE_AFTER * self.clock.rate
        state = dict(trigger.state)
        try:
            plan = schedule.plan(spec, trigger.next_due_at, now, late_after=late_after)
        except CronNeverFires as exc:
            # A line stored before the spec refused such lines: mark it and stop waking for
            # it (retrying could never succeed), rather than fail every tick.
            log.error(
                "schedule %s of workflow %s is skipped: %s", trigger.name, trigger.workflow_id, exc
            )
            state[schedule.BROKEN] = str(exc)
            with self.runtime.db.session() as session:
                store.advance(
                    session,
                    trigger.id,
                    expected_due=trigger.next_due_at,
                    next_due_at=None,
                    state=state,
                )
            return
        if plan.missed:
            log.warning(
                "schedule %s of workflow %s: %s",
                trigger.name,
                trigger.workflow_id,
                plan.notes[0]
                if plan.notes
                else f"skipped {counted(plan.missed, 'missed instant')}",
            )
            state["missed"] = int(state.get("missed") or 0) + plan.missed
        for index, instant in enumerate(plan.fire):
            result = self._fire(trigger, instant, timezone, plan.notes if index == 0 else [])
            state.update(result)
        with self.runtime.db.session() as session:
            store.advance(
                session,
                trigger.id,
                expected_due=trigger.next_due_at,
                next_due_at=plan.next_due_at,
                state=state,
            )

    def _fire(
        self, trigger: Trigger, instant: float, timezone: str, notes: list[str]
    ) -> dict[str, object]:
        """Fire one instant; returns what the trigger's state keeps of it."""
        local = schedule.local_time(instant, timezone)
        event = Event(
            source=f"{trigger.name} at {local}",
            details={"instant": local},
            notes=notes,
        )
        fired_at = self.runtime.clock()

        def claim(session: Session, execution_id: str) -> str | None:
            return store.claim_fire(session, trigger.id, instant, execution_id, fired_at)

        outcome: dict[str, object] = {"last_instant": instant}
        try:
            fired = fire(self.runtime, trigger.id, event, claim=claim)
        except TriggerRefused as exc:
            log.info("schedule %s at %s did not fire: %s", trigger.name, local, exc.message)
            if exc.reason in QUIET_REFUSALS:
                return {}  # simply not fired: the last real result stays
            outcome.update(last_error=exc.message, last_execution_id=None)
            return outcome
        except InvalidInput as exc:
            log.warning("schedule %s at %s could not start a run: %s", trigger.name, local, exc)
            outcome.update(last_error=exc.message, last_execution_id=None)
            return outcome
        except OpsflowError as exc:
            log.error("schedule %s at %s failed: %s", trigger.name, local, exc.message)
            outcome.update(last_error=exc.message, last_execution_id=None)
            return outcome
        outcome.update(last_error=None, last_execution_id=fired.execution_id)
        return outcome


@asynccontextmanager
async def scheduler_extension(services: Services) -> AsyncIterator[Scheduler]:
    """The server's scheduler as an app extension, after the runtime (it fires through it)."""
    runtime: Runtime = services.extra["runtime"].runtime
    scheduler = Scheduler(runtime, clock=SchedulerClock.parse(services.settings.scheduler_clock))
    services.extra[SCHEDULER_KEY] = scheduler
    scheduler.start()
    try:
        yield scheduler
    finally:
        await asyncio.to_thread(scheduler.stop)
