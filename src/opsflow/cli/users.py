"""``opsflow users ...``: people who sign in to opsflow, and the role each one holds."""

from __future__ import annotations

import secrets
import sys
from typing import Annotated, Any

import typer

from opsflow.auth.permissions import Role
from opsflow.cli.client import client_for, delete_confirmed
from opsflow.cli.output import (
    OutputFormat,
    OutputOption,
    UsageError,
    YesOption,
    age,
    cell,
    items_of,
    print_json,
    say,
    stderr,
    table,
)

app = typer.Typer(help="Manage users and their roles (needs users:manage).", no_args_is_help=True)

UserName = Annotated[str, typer.Argument(help="The user's login name.", show_default=False)]


@app.command("list")
def list_users(ctx: typer.Context, output: OutputOption = OutputFormat.TEXT) -> None:
    """List users with their roles."""
    body = client_for(ctx).get("/users")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    table(
        ["NAME", "ROLE", "ACTIVE", "TEAMS", "EMAIL", "CREATED"],
        [
            [
                cell(u.get("name")),
                cell(u.get("role")),
                cell(u.get("active")),
                cell(u.get("teams")),
                cell(u.get("email")),
                age(u.get("created_at")),
            ]
            for u in items_of(body)
        ],
    )


def _read_password() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError(
            "--password-stdin read an empty password",
            hint='pipe the password in: printf %s "$PASSWORD" | opsflow users create ...',
        )
    return password


@app.command()
def create(
    ctx: typer.Context,
    name: UserName,
    role: Annotated[Role, typer.Option(help="What the user may do.", show_default=False)],
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the password from stdin; otherwise one is generated and printed once.",
        ),
    ] = False,
    email: Annotated[str | None, typer.Option(help="Where notifications reach them.")] = None,
    display_name: Annotated[str | None, typer.Option(help="Name shown in the UI.")] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Create a user; prints a generated password once unless --password-stdin is given."""
    generated = not password_stdin
    password = secrets.token_urlsafe(18) if generated else _read_password()
    payload: dict[str, Any] = {"name": name, "role": role.value, "password": password}
    if email is not None:
        payload["email"] = email
    if display_name is not None:
        payload["display_name"] = display_name
    body = client_for(ctx).post("/users", json=payload)
    if output is OutputFormat.JSON:
        print_json(body)
        if generated:  # stdout stays the API's JSON; the secret goes where a person sees it
            stderr.print(f"password: {password}  (shown once)", markup=False)
        return
    say(f"created user {name} ({role.value})")
    if generated:
        say(f"password: {password}")
        say("(shown once: store it now; the user can change it with `opsflow me set-password`)")


def _patch(
    ctx: typer.Context, name: str, change: dict[str, Any], done: str, output: OutputFormat
) -> None:
    body = client_for(ctx).patch(f"/users/{name}", json=change)
    if output is OutputFormat.JSON:
        print_json(body)
        return
    say(f"{name}: {done}")


@app.command("set-role")
def set_role(
    ctx: typer.Context,
    name: UserName,
    role: Annotated[Role, typer.Argument(help="The new role.", show_default=False)],
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Change what a user may do."""
    _patch(ctx, name, {"role": role.value}, f"role is now {role.value}", output)


@app.command()
def disable(ctx: typer.Context, name: UserName, output: OutputOption = OutputFormat.TEXT) -> None:
    """Stop a user from signing in or using their tokens; history keeps their name."""
    _patch(ctx, name, {"active": False}, "disabled", output)


@app.command()
def enable(ctx: typer.Context, name: UserName, output: OutputOption = OutputFormat.TEXT) -> None:
    """Let a disabled user sign in again."""
    _patch(ctx, name, {"active": True}, "enabled", output)


@app.command()
def delete(
    ctx: typer.Context,
    name: UserName,
    yes: YesOption = False,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Delete a user and their tokens."""
    delete_confirmed(ctx, f"/users/{name}", name, f"delete user {name}?", yes=yes, output=output)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="users")
