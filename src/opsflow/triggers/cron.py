"""The instants a cron line names in a time zone, correct across daylight-saving changes.

croniter walks the local wall clock; the wall clock is what a cron line speaks about, but it
skips an hour in spring and repeats one in autumn. Handed timezone-aware datetimes, croniter
7.0 gets the skipped hour and the elapsed-time lines right but fires a fixed time twice in
the repeated hour (``30 2 * * *`` at 02:30+02:00 and again at 02:30+01:00 on Berlin's
fall-back day), and its DST handling has changed between releases. So it is only ever handed
naive wall-clock times here, and this module maps each wall-clock match to real instants
itself, by two rules:

- a line whose hour field is fixed (``30 2 * * *``, ``@daily``) means a time of day: on the
  repeated hour it fires once (the first occurrence); on the skipped hour it fires once, at
  the next valid instant (the moment the clocks jump, 03:00 in Europe/Berlin);
- a line whose hour field is ``*`` or a step (``*/15 * * * *``, ``0 */2 * * *``, ``@hourly``)
  follows elapsed time: every real instant whose wall-clock reading matches fires, so the
  repeated hour fires twice and the skipped hour not at all.

Pure: no clock, no database. Instants are float epoch seconds (whole seconds).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterError, croniter

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# No zone moves its clocks by more than this at once; bounds how far ahead of an instant a
# later wall-clock match can still land before it in real time.
_MAX_SHIFT = timedelta(hours=3)


class CronNeverFires(ValueError):
    """The cron line names no instant at all (``0 0 30 2 *``: there is no 30 February).

    The spec refuses such a line when a workflow is applied; this is for a line stored before
    that check, so a caller can mark its schedule broken instead of failing."""


def expand(cron: str) -> str:
    """The five-field form of a cron line (macros spelled out)."""
    text = cron.strip()
    return _MACROS.get(text.lower(), text)


def follows_elapsed_time(cron: str) -> bool:
    """Whether the hour field is ``*`` or a step: such a line follows real elapsed time."""
    hour = expand(cron).split()[1]
    return hour == "*" or "/" in hour


def _utc(naive: datetime, tz: ZoneInfo, fold: int) -> datetime:
    return naive.replace(tzinfo=tz, fold=fold).astimezone(UTC)


def _exists(naive: datetime, tz: ZoneInfo) -> bool:
    """Whether the wall-clock time occurs at all (not inside a spring-forward gap)."""
    back = _utc(naive, tz, 0).astimezone(tz).replace(tzinfo=None)
    return back == naive


def _gap_end(naive: datetime, tz: ZoneInfo) -> datetime:
    """The first real instant whose wall-clock reading is past ``naive`` (which lies in a
    gap): the moment the clocks jumped."""
    lo = _utc(naive, tz, 1)  # read with the offset after the jump: before the gap
    hi = _utc(naive, tz, 0)  # with the offset before it: after the gap
    if lo > hi:
        lo, hi = hi, lo
    while (hi - lo) > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid.astimezone(tz).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return hi


def _real_instants(naive: datetime, tz: ZoneInfo, elapsed: bool) -> list[datetime]:
    """The real instants (UTC) one wall-clock match stands for, by the module's two rules."""
    first, second = _utc(naive, tz, 0), _utc(naive, tz, 1)
    if not _exists(naive, tz):
        return [] if elapsed else [_gap_end(naive, tz)]
    if first != second:  # the repeated hour: the wall-clock time happens twice
        return [first, second] if elapsed else [first]
    return [first]


def _nearby_shift(instant: datetime, tz: ZoneInfo) -> timedelta:
    """How far the zone's offset moves within `_MAX_SHIFT` of ``instant`` (zero far from a
    change, which is almost always: then no look-ahead is needed)."""
    before = (instant - _MAX_SHIFT).astimezone(tz).utcoffset() or timedelta(0)
    after = (instant + _MAX_SHIFT).astimezone(tz).utcoffset() or timedelta(0)
    return abs(after - before)


def instants(cron: str, timezone: str, after: float) -> Iterator[float]:
    """The instants the cron line names in ``timezone``, strictly after ``after``, in order.

    Endless; take what you need (``itertools.islice``, a ``for`` with a ``break``).
    """
    tz = ZoneInfo(timezone)
    elapsed = follows_elapsed_time(cron)
    start = datetime.fromtimestamp(after, UTC)
    # Start a little before, on the wall clock: a match read there may still land after
    # ``after`` in real time (the repeated hour).
    margin = _nearby_shift(start, tz)
    local_start = (start - margin).astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)
    walker = croniter(expand(cron), local_start - timedelta(seconds=1))
    pending: list[float] = []  # real instants found, waiting until no earlier one can appear
    last = after
    while True:
        try:
            naive = walker.get_next(datetime)
        except CroniterError as exc:
            raise CronNeverFires(f"{cron!r} never fires: it matches no date ({exc})") from exc
        for real in _real_instants(naive, tz, elapsed):
            heapq.heappush(pending, real.timestamp())
        # Every later wall-clock match lands after this one's earliest reading minus the
        # jump of the clocks nearby (if any), so what lies before that is final.
        reading = _utc(naive, tz, 1)
        safe = (reading - _nearby_shift(reading, tz)).timestamp()
        while pending and pending[0] <= safe:
            value = heapq.heappop(pending)
            if value > last:  # also drops two wall-clock matches that map to one instant
                last = value
                yield value


def next_instant(cron: str, timezone: str, after: float) -> float:
    """The first instant strictly after ``after``."""
    return next(instants(cron, timezone, after))
