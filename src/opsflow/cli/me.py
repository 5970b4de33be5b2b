"""``opsflow me ...``: your own account (who you are, your password)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from opsflow.cli.client import client_for
from opsflow.cli.output import OutputFormat, OutputOption, UsageError, print_json, say
from opsflow.words import counted

app = typer.Typer(help="Your own account.", no_args_is_help=True)


@app.command()
def show(ctx: typer.Context, output: OutputOption = OutputFormat.TEXT) -> None:
    """Who you are signed in as: name, role and teams."""
    body = client_for(ctx).get("/me")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    teams = ", ".join(body.get("teams") or []) or "none"
    say(f"{body.get('name')} ({body.get('role')}); teams: {teams}")


def _from_stdin() -> tuple[str, str]:
    lines = sys.stdin.read().splitlines()
    if len(lines) < 2 or not lines[0] or not lines[1]:
        raise UsageError(
            "--stdin reads two lines: the current password, then the new one",
            hint='printf "%s\\n%s\\n" "$OLD" "$NEW" | opsflow me set-password --stdin',
        )
    return lines[0], lines[1]


@app.command("set-password")
def set_password(
    ctx: typer.Context,
    from_stdin: Annotated[
        bool,
        typer.Option(
            "--stdin",
            help="Read the current and the new password from stdin, one per line, instead of "
            "asking for them.",
        ),
    ] = False,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Change your password. Asks for the current one and the new one (twice) without echo.

    Your other browser sessions and log-in tokens end; API tokens stay valid."""
    if from_stdin:
        current, new = _from_stdin()
    else:
        current = typer.prompt("Current password", hide_input=True)
        new = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    body = client_for(ctx).patch("/me", json={"current_password": current, "password": new})
    if output is OutputFormat.JSON:
        print_json(body)
        return
    sessions = counted(int(body.get("sessions_ended", 0)), "other browser session")
    tokens = counted(int(body.get("login_tokens_revoked", 0)), "log-in token")
    say(
        f"password changed for {body.get('user')}; signed out {sessions}, revoked {tokens} "
        "(API tokens stay valid)"
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="me")
