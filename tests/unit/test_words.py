"""Counts in messages read as English: "1 line", "2 lines"."""

from __future__ import annotations

from opsflow.words import counted


def test_one_is_singular_and_every_other_count_plural() -> None:
    assert counted(1, "line") == "1 line"
    assert [counted(n, "line") for n in (0, 2, 10)] == ["0 lines", "2 lines", "10 lines"]
    assert counted(1, "entry", "entries") == "1 entry"
    assert counted(3, "entry", "entries") == "3 entries"
    assert counted(1, "pending approval") == "1 pending approval"
