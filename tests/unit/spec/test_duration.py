"""The one duration parser."""

from __future__ import annotations

import pytest

from opsflow.spec.duration import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("10m", 600.0),
        ("1h30m", 5400.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("500ms", 0.5),
        ("1m500ms", 60.5),
        (" 45 ", 45.0),
        ("1.5h", 5400.0),
        ("0", 0.0),
        (30, 30.0),
        (2.5, 2.5),
        ("2H", 7200.0),
    ],
)
def test_durations_are_read_as_seconds(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10 minutes", "-5s", "1h 30m", "m", "5x", "1e3"])
def test_a_bad_duration_says_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="use a number of seconds or units like 90s"):
        parse_duration(text)


@pytest.mark.parametrize("value", [True, -1, float("inf"), float("nan")])
def test_booleans_and_negative_or_endless_numbers_are_not_durations(value: float) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"), [(5400, "1h30m"), (0, "0s"), (90061, "1d1h1m1s"), (0.5, "0.5s")]
)
def test_durations_format_back_to_short_text(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
