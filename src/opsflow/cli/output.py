"""How results and errors reach the terminal.

Results go to stdout (a Rich table or text for people, the API's JSON verbatim for scripts with
``--output json``); errors go to stderr as ``error: ...`` lines. Every command failure is a
:class:`CliError` raised anywhere below the command and printed once, by ``main``, so exit codes
stay consistent: 1 when the command could not do its work, 2 when it was called wrongly.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from opsflow.errors import OpsflowError, Problem


def _pipe_width() -> int | None:
    """Rich assumes 80 columns off a terminal; a pipe has no width, so never fold tables there."""
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return None
    return 10_000


stdout = Console(highlight=False, soft_wrap=True, width=_pipe_width())
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


OutputOption = Annotated[
    OutputFormat,
    typer.Option(
        "--output",
        "-o",
        case_sensitive=False,
        help="text for people, json (the API's own JSON) for scripts.",
    ),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


class CliError(OpsflowError):
    """The command could not do what was asked."""

    exit_code = 1

    def __init__(
        self,
        message: str | None = None,
        *,
        problems: list[Problem] | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, problems=problems)
        self.hint = hint


class UsageError(CliError):
    """The command was called wrongly."""

    exit_code = 2


def report_error(exc: CliError) -> None:
    """Print ``error: <message>``, then each located problem, then a hint on how to fix it."""
    lines = [f"error: {exc.message}"]
    lines += [f"  {p.loc or '(root)'}: {p.msg}" for p in exc.problems]
    if exc.hint:
        lines.append(f"hint: {exc.hint}")
    stderr.print("\n".join(lines), markup=False)


def print_json(data: Any) -> None:
    """Write JSON to stdout without Rich, so a script always reads exactly what the API sent."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def say(text: str) -> None:
    """One line of plain text for people on stdout (no markup interpretation)."""
    stdout.print(text, markup=False)


# Longest text a table's prose column (an error, a reason, a message) shows whole; a longer one
# is cut with "…", so one long error does not widen its column, and every row's padding, past
# the screen. Other columns hold ids, URLs and names to copy, and are never cut.
MAX_CELL = 64
PROSE_COLUMNS = frozenset(
    {"WAITING FOR / ERROR", "ERROR", "REASON", "MESSAGE", "DESCRIPTION", "YOU"}
)


def short(value: str, limit: int = MAX_CELL) -> str:
    """``value`` on one line, cut to ``limit`` characters with "…" when longer."""
    flat = " ".join(value.split()) if "\n" in value or "\r" in value else value
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def table(columns: list[str], rows: list[list[str]], *, title: str | None = None) -> None:
    """Print rows as a Rich table; an empty list prints a single "(none)" line instead.

    Cells of the ``PROSE_COLUMNS`` longer than ``MAX_CELL`` are cut (``-o json`` has them
    whole, and ``executions show`` prints them below its table)."""
    if not rows:
        say("(none)")
        return
    prose = [name in PROSE_COLUMNS for name in columns]
    rows = [[short(v) if cut else v for v, cut in zip(row, prose, strict=False)] for row in rows]
    out = Table(title=title, header_style="bold", box=None, pad_edge=False)
    for index, name in enumerate(columns):
        # fold, never truncate: an id cut to "prod-dep…" cannot be copied into the next command;
        # and the first column (the id) is never broken at all
        first = index == 0
        width = max(len(row[0]) for row in rows) if first else None
        out.add_column(name, overflow="fold", no_wrap=first, min_width=width)
    for row in rows:
        out.add_row(*(Text(value) for value in row))  # Text: values are data, not Rich markup
    stdout.print(out)


def cell(value: Any) -> str:
    """A table cell: ``-`` for missing values, ``k=v`` pairs for mappings, commas for lists."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def age(value: Any, *, now: datetime | None = None) -> str:
    """An API timestamp as people read it: relative within a day (``just now``, ``45 s ago``,
    ``2 min ago``, ``in 3 h``), else the local date and time (``2026-11-28 14:05``).

    The API sends UTC ISO 8601 (and ``-o json`` passes it on verbatim); a table shows the
    reader's own clock, since a raw ``2026-11-30T14:03:12.345678+00:00`` has to be decoded.
    """
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    if abs(seconds) >= 86400:
        return local_time(moment)
    if abs(seconds) < 5:
        return "just now"
    return f"in {_span(-seconds)}" if seconds < 0 else f"{_span(seconds)} ago"


def local_time(moment: datetime) -> str:
    """``2026-11-28 14:05`` in the reader's local time zone."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def clock(value: Any) -> str:
    """An API timestamp as the local time of day with seconds (``14:05:09``), for log lines
    whose date the reader already knows."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone().strftime("%H:%M:%S")


def _span(seconds: int) -> str:
    for size, unit in ((3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def confirm(question: str, *, yes: bool) -> None:
    """Ask before a destructive action; without a terminal to ask on, require ``--yes``."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(
            f"{question} (not asked: stdin is not a terminal)",
            hint="pass --yes to confirm without a prompt",
        )
    typer.confirm(question, abort=True)


def items_of(body: Any) -> list[Any]:
    """The rows of a list response, whether the API sent a bare list or ``{items: [...]}``."""
    if isinstance(body, dict):
        return list(body.get("items") or [])
    return list(body or [])
