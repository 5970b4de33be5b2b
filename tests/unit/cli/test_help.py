"""Help text is reflowed to the terminal's width: a docstring's own line breaks never cut a
sentence in the command lists (Rich keeps them there)."""

from __future__ import annotations

import re
from typing import Any

import typer
from typer.testing import CliRunner

from opsflow.cli.main import app


def _commands(command: Any, path: str = "opsflow") -> list[tuple[str, Any]]:
    found = [(path, command)]
    if hasattr(command, "commands"):  # a group (Typer may bring its own click)
        for name, sub in command.commands.items():
            found += _commands(sub, f"{path} {name}")
    return found


def test_no_help_text_breaks_a_paragraph_across_lines() -> None:
    broken = [
        path
        for path, command in _commands(typer.main.get_command(app))
        for paragraph in re.split(r"\n\s*\n", command.help or "")
        if "\n" in paragraph.strip()
    ]
    assert len(_commands(typer.main.get_command(app))) > 50  # every command was looked at
    assert broken == []


def test_the_command_list_wraps_at_the_terminal_not_mid_sentence() -> None:
    shown = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "250"}, terminal_width=250)
    assert shown.exit_code == 0, shown.output
    (line,) = [x for x in shown.output.splitlines() if x.lstrip("│ ").startswith("retry ")]
    assert "approvals included; from here" in line
