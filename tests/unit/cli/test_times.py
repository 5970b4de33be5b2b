"""Times in the CLI's tables read as people say them: relative within a day, else the
reader's local date and time; never the API's raw ISO 8601."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from opsflow.cli.output import age, clock

NOW = datetime(2026, 11, 30, 14, 5, 0, tzinfo=UTC)


@pytest.fixture
def in_kolkata(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The reader's clock at UTC+05:30 (no daylight saving), so local time is visible."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def iso(moment: datetime) -> str:
    return moment.isoformat()


def test_recent_times_are_relative_in_words() -> None:
    assert age(iso(NOW - timedelta(seconds=2)), now=NOW) == "just now"
    assert age(iso(NOW - timedelta(seconds=45)), now=NOW) == "45 s ago"
    assert age(iso(NOW - timedelta(minutes=2, seconds=10)), now=NOW) == "2 min ago"
    assert age(iso(NOW - timedelta(hours=3, minutes=59)), now=NOW) == "3 h ago"


def test_a_coming_deadline_reads_in_so_long() -> None:
    assert age(iso(NOW + timedelta(minutes=58, seconds=30)), now=NOW) == "in 58 min"


def test_older_times_are_the_readers_local_date_and_time(in_kolkata: None) -> None:
    assert age("2026-11-28T14:05:09.123456+00:00", now=NOW) == "2026-11-28 19:35"
    assert age("2026-11-28T14:05:09Z", now=NOW) == "2026-11-28 19:35"
    assert age(iso(NOW + timedelta(days=3)), now=NOW) == "2026-12-03 19:35"


def test_log_times_are_the_local_time_of_day(in_kolkata: None) -> None:
    assert clock("2026-11-30T14:05:09.5+00:00") == "19:35:09"


def test_missing_and_unreadable_times_say_so() -> None:
    assert age(None) == "-"
    assert age("yesterday-ish") == "yesterday-ish"
