"""``opsflow teams ...``: groups of users, named by approvals as ``team:<name>``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from opsflow.cli.client import client_for, delete_confirmed
from opsflow.cli.output import (
    OutputFormat,
    OutputOption,
    YesOption,
    age,
    cell,
    items_of,
    print_json,
    say,
    table,
)

app = typer.Typer(help="Manage teams (approvers such as team:platform).", no_args_is_help=True)

TeamName = Annotated[str, typer.Argument(help="The team's name.", show_default=False)]
UserName = Annotated[str, typer.Argument(help="A user's login name.", show_default=False)]


@app.command("list")
def list_teams(ctx: typer.Context, output: OutputOption = OutputFormat.TEXT) -> None:
    """List teams and their members."""
    body = client_for(ctx).get("/teams")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    table(
        ["NAME", "MEMBERS", "CREATED"],
        [
            [cell(t.get("name")), cell(t.get("members")), age(t.get("created_at"))]
            for t in items_of(body)
        ],
    )


@app.command()
def create(
    ctx: typer.Context,
    name: TeamName,
    display_name: Annotated[str | None, typer.Option(help="Name shown in the UI.")] = None,
    member: Annotated[
        list[str] | None,
        typer.Option("--member", "-m", help="A user to add. Repeatable.", show_default=False),
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Create a team, optionally with its first members."""
    payload: dict[str, Any] = {"name": name, "members": member or []}
    if display_name is not None:
        payload["display_name"] = display_name
    body = client_for(ctx).post("/teams", json=payload)
    if output is OutputFormat.JSON:
        print_json(body)
        return
    say(f"created team {name}")


@app.command("add-member")
def add_member(
    ctx: typer.Context, team: TeamName, user: UserName, output: OutputOption = OutputFormat.TEXT
) -> None:
    """Add a user to a team."""
    body = client_for(ctx).put(f"/teams/{team}/members/{user}")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    already = isinstance(body, dict) and body.get("changed") is False
    say(f"{team}: {user} was already a member" if already else f"{team}: added {user}")


@app.command("remove-member")
def remove_member(
    ctx: typer.Context, team: TeamName, user: UserName, output: OutputOption = OutputFormat.TEXT
) -> None:
    """Remove a user from a team."""
    body = client_for(ctx).delete(f"/teams/{team}/members/{user}")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    say(f"{team}: removed {user}")


@app.command()
def delete(
    ctx: typer.Context,
    team: TeamName,
    yes: YesOption = False,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Delete a team (approvals naming it then match nobody)."""
    delete_confirmed(ctx, f"/teams/{team}", team, f"delete team {team}?", yes=yes, output=output)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="teams")
