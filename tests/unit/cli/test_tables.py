"""CLI tables stay as wide as their ordinary cells: a long error or reason is cut with "…" (ids,
URLs and names never are), and ``executions show`` prints what it cut in full below the table."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from opsflow.cli.output import MAX_CELL, short, table
from opsflow.cli.runs import print_detail
from tests.unit.cli.test_show import DETAIL

LONG = "Error: creating the web server: " + "quota exceeded in region eu-west-1; " * 12


def test_a_long_cell_does_not_widen_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [["a" * 63, "failed", LONG], ["short-id", "ok", "-"]]
    table(["ID", "STATUS", "ERROR"], rows)
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 63 + len("failed") + MAX_CELL + 4
    assert lines[1].startswith("a" * 63), "the id is shown whole"
    assert lines[1].rstrip().endswith("…")
    assert LONG[:40] in lines[1]


def test_columns_of_ids_and_urls_are_never_cut(capsys: pytest.CaptureFixture[str]) -> None:
    url = "http://127.0.0.1:8321/hooks/" + "k" * 60
    last = "2026-11-30 10:00: running " + "e" * 32
    table(["NAME", "URL", "LAST"], [["hook", url, last]])
    out = capsys.readouterr().out
    assert url in out and last in out and "…" not in out


def test_short_keeps_one_line_and_says_it_cut() -> None:
    assert short("fine") == "fine"
    assert short("two\nlines") == "two lines"
    cut = short(LONG)
    assert len(cut) == MAX_CELL and cut.endswith("…")


def test_show_prints_the_errors_it_cut_in_full(capsys: pytest.CaptureFixture[str]) -> None:
    detail: dict[str, Any] = copy.deepcopy(DETAIL)
    detail["steps"][0]["jobs"][0]["error"] = LONG
    print_detail(detail)
    out = capsys.readouterr().out
    table_part, after = out.split("in full:\n", 1)
    assert LONG.strip() not in table_part
    assert f"  plan attempt 1: {LONG.strip()}" in after
    assert max(len(line) for line in table_part.splitlines()) < 120
