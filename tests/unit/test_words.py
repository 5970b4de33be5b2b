"""Counts in messages read as English: "1 line", "2 lines"."""

from __future__ import annotations

from opsflow.words import counted, did_you_mean


def test_one_is_singular_and_every_other_count_plural() -> None:
    assert counted(1, "line") == "1 line"
    assert [counted(n, "line") for n in (0, 2, 10)] == ["0 lines", "2 lines", "10 lines"]
    assert counted(1, "entry", "entries") == "1 entry"
    assert counted(3, "entry", "entries") == "3 entries"
    assert counted(1, "pending approval") == "1 pending approval"


def test_a_typo_gets_the_close_names_and_a_stranger_gets_none() -> None:
    known = ["hello", "api-deploy", "nightly-db-backup", "help-desk"]
    assert did_you_mean("helo", known) == "; did you mean 'hello'?"
    assert did_you_mean("api-deplyo", known) == "; did you mean 'api-deploy'?"
    assert did_you_mean("zzz", known) == ""
    assert did_you_mean("x", []) == ""
