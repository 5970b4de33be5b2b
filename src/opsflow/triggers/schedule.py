"""Schedule triggers: which instants to fire now, by the ``missed`` policy (pure).

The scheduler keeps one wake time per schedule, ``next_due_at``: the first instant not yet
handled. When it comes, every instant from there to now is due. Those at most `LATE_AFTER`
seconds old are on time and fire (a busy server is a little late, not down); older ones were
*missed* while no server was running, and ``missed`` decides:

- ``skip``: none of them runs;
- ``run-once``: one run, for the latest missed instant;
- ``all``: one run each, at most the latest `CATCH_UP_CAP`, with a note in the first run's
  engine log saying how many were left out.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from opsflow.spec.triggers import MissedRuns
from opsflow.triggers.cron import instants, next_instant
from opsflow.words import counted

if TYPE_CHECKING:
    from opsflow.store.triggers import Trigger

# An instant older than this when the scheduler handles it was missed (no server was up).
LATE_AFTER = 60.0
# The trigger state's key for why a schedule cannot fire at all (a cron line that matches no
# date, stored before the spec refused such lines): set by sync and the scheduler, shown by
# ``GET /schedules``.
BROKEN = "broken"
# At most this many missed instants run under ``missed: all``.
CATCH_UP_CAP = 100
# Counting missed instants stops here (a year of a per-minute schedule is 525,600).
_COUNT_LIMIT = 100_000


def first_due(old: Trigger | None, spec: Mapping[str, Any], now: float) -> float:
    """A new, changed or revived schedule starts with the first instant after now: what
    happened before it was declared is not "missed"."""
    return next_instant(str(spec["cron"]), str(spec.get("timezone") or "UTC"), now)


def local_time(instant: float, timezone: str) -> str:
    """An instant as ISO 8601 in the schedule's zone, e.g. 2026-03-29T03:00:00+02:00."""
    return datetime.fromtimestamp(instant, UTC).astimezone(ZoneInfo(timezone)).isoformat()


@dataclass(frozen=True)
class Plan:
    """What to do for one due schedule: fire ``fire`` (in order), then wake at
    ``next_due_at``. ``notes`` go to the engine log of the first run fired."""

    fire: list[float]
    next_due_at: float
    missed: int = 0
    notes: list[str] = field(default_factory=list)


def plan(
    spec: Mapping[str, Any], due_at: float, now: float, *, late_after: float = LATE_AFTER
) -> Plan:
    """The instants due from ``due_at`` (the schedule's ``next_due_at``) up to ``now``: those
    at most ``late_after`` seconds old are on time and fire; older ones were missed."""
    cron = str(spec["cron"])
    timezone = str(spec.get("timezone") or "UTC")
    policy = MissedRuns(spec.get("missed") or MissedRuns.SKIP)
    missed: deque[float] = deque(maxlen=CATCH_UP_CAP)  # the latest missed instants
    missed_count = 0
    first_missed: float | None = None
    on_time: list[float] = []
    next_due = due_at
    for instant in itertools.chain([due_at], instants(cron, timezone, due_at)):
        if instant > now:
            next_due = instant
            break
        if now - instant <= late_after:
            on_time.append(instant)
            continue
        missed_count += 1
        first_missed = instant if first_missed is None else first_missed
        missed.append(instant)
        if missed_count >= _COUNT_LIMIT:
            # Years behind: start again a short way back, enough for the cap.
            recent = [i for i in _upto(cron, timezone, now) if now - i > late_after]
            missed = deque(recent, maxlen=CATCH_UP_CAP)
            on_time = [i for i in _upto(cron, timezone, now) if now - i <= late_after]
            next_due = next_instant(cron, timezone, now)
            break
    if not missed_count:
        return Plan(on_time, next_due)
    assert first_missed is not None
    last = missed[-1]
    span = local_time(first_missed, timezone)
    if missed_count > 1:
        span = f"{span} to {local_time(last, timezone)}"
    lead = f"missed {counted(missed_count, 'instant')} ({span}) while no server ran: "
    if policy == MissedRuns.SKIP:
        return Plan(on_time, next_due, missed_count, [lead + "skipped (missed: skip)"])
    if policy == MissedRuns.RUN_ONCE:
        note = lead + "one run stands for them (missed: run-once)"
        return Plan(on_time or [last], next_due, missed_count, [note])
    note = lead + "each runs (missed: all)"
    if missed_count > len(missed):
        note = lead + f"only the last {len(missed)} run (missed: all runs at most {CATCH_UP_CAP})"
    return Plan([*missed, *on_time], next_due, missed_count, [note])


def _upto(cron: str, timezone: str, now: float) -> list[float]:
    """The latest CATCH_UP_CAP + 1 instants up to ``now``, looking back at most a week (for a
    schedule years behind)."""
    found: list[float] = []
    for instant in instants(cron, timezone, now - 7 * 86400):
        if instant > now:
            break
        found.append(instant)
    return found[-(CATCH_UP_CAP + 1) :]
