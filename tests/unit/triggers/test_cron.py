"""Cron instants across daylight-saving changes, and the missed-instant policies (pure)."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest

from opsflow.triggers.cron import CronNeverFires, instants
from opsflow.triggers.schedule import CATCH_UP_CAP, plan

BERLIN = "Europe/Berlin"


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def local(values: list[float]) -> list[str]:
    from opsflow.triggers.schedule import local_time

    return [local_time(v, BERLIN) for v in values]


def upcoming(cron: str, after: str, count: int, tz: str = BERLIN) -> list[str]:
    return local(list(itertools.islice(instants(cron, tz, at(after)), count)))


def test_a_fixed_time_in_the_skipped_hour_fires_once_when_the_clocks_jump() -> None:
    assert upcoming("30 2 * * *", "2026-03-28T12:00:00+01:00", 2) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]
    # Two times inside the gap and one right after it are one instant, not three.
    assert upcoming("0,30 2,3 * * *", "2026-03-29T00:00:00+01:00", 2) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:30:00+02:00",
    ]


def test_a_fixed_time_in_the_repeated_hour_fires_once() -> None:
    assert upcoming("30 2 * * *", "2026-10-24T12:00:00+02:00", 2) == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]


def test_an_hour_wildcard_follows_elapsed_time() -> None:
    assert upcoming("0 * * * *", "2026-03-29T00:30:00+01:00", 3) == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T04:00:00+02:00",
    ]
    assert upcoming("@hourly", "2026-10-25T01:30:00+02:00", 4) == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
        "2026-10-25T04:00:00+01:00",
    ]
    assert upcoming("*/30 * * * *", "2026-10-25T02:00:00+02:00", 4) == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]


@pytest.mark.parametrize("tz", ["UTC", BERLIN, "America/New_York", "Australia/Lord_Howe"])
def test_instants_only_ever_increase(tz: str) -> None:
    """A year of a line with a step in the hour field: both DST changes (half an hour
    each on Lord Howe Island)."""
    start = at("2026-01-01T00:00:00+00:00")
    found = list(itertools.islice(instants("15,45 */2 * * *", tz, start), 8_800))
    assert all(a < b for a, b in itertools.pairwise(found))
    assert found[-1] - start > 364 * 86400


EVERY_5 = {"cron": "*/5 * * * *", "timezone": "UTC"}


def test_an_instant_a_little_late_is_on_time() -> None:
    due = at("2026-01-01T10:05:00+00:00")
    result = plan({**EVERY_5, "missed": "skip"}, due, due + 20)
    assert result.fire == [due] and result.missed == 0
    assert result.next_due_at == at("2026-01-01T10:10:00+00:00")


@pytest.mark.parametrize(("policy", "fired"), [("skip", 0), ("run-once", 1), ("all", CATCH_UP_CAP)])
def test_missed_instants_follow_the_policy(policy: str, fired: int) -> None:
    due = at("2026-01-01T00:05:00+00:00")
    now = at("2026-01-01T10:02:00+00:00")  # 120 instants, the last one 2 minutes old
    result = plan({**EVERY_5, "missed": policy}, due, now)
    assert len(result.fire) == fired and result.missed == 120
    assert result.next_due_at == at("2026-01-01T10:05:00+00:00")
    if fired:
        assert result.fire[-1] == at("2026-01-01T10:00:00+00:00")
        assert "missed 120 instants" in result.notes[0]
    if policy == "all":
        assert "only the last 100 run" in result.notes[0]


def test_a_line_that_never_fires_raises_a_typed_error_not_crontiers() -> None:
    with pytest.raises(CronNeverFires, match="never fires"):
        next(instants("0 0 30 2 *", BERLIN, at("2026-01-01T00:00:00+00:00")))
    with pytest.raises(CronNeverFires):
        plan(
            {"cron": "0 0 30 2 *"}, at("2026-01-01T00:00:00+00:00"), at("2026-01-02T00:00:00+00:00")
        )
