"""``opsflow tokens ...``: API tokens for scripts, agents and CI; the secret is shown once."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from opsflow.cli.client import client_for
from opsflow.cli.output import (
    OutputFormat,
    OutputOption,
    UsageError,
    age,
    cell,
    items_of,
    print_json,
    say,
    table,
)

app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)


def _state(token: dict[str, Any]) -> str:
    if token.get("revoked_at"):
        return "revoked"
    if token.get("expired"):
        return "expired"
    return "active"


@app.command("list")
def list_tokens(
    ctx: typer.Context,
    user: Annotated[
        str | None,
        typer.Option(help="This user's tokens (admins only); default: yours.", show_default=False),
    ] = None,
    all_users: Annotated[
        bool, typer.Option("--all", help="Every user's tokens (admins only).")
    ] = False,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """List API tokens: yours, one user's, or everyone's."""
    if user and all_users:
        raise UsageError("give --user or --all, not both")
    body = client_for(ctx).get("/tokens", params={"user": "*" if all_users else user})
    if output is OutputFormat.JSON:
        print_json(body)
        return
    table(
        ["ID", "NAME", "USER", "PREFIX", "STATE", "EXPIRES", "LAST USED"],
        [
            [
                cell(t.get("id")),
                cell(t.get("name")),
                cell(t.get("user")),
                cell(t.get("prefix")),
                _state(t),
                age(t.get("expires_at")) if t.get("expires_at") else "never",
                age(t.get("last_used_at")) if t.get("last_used_at") else "never",
            ]
            for t in items_of(body)
        ],
    )


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="What the token is for, e.g. ci-deploy.")] = "",
    expires_in: Annotated[
        str | None,
        typer.Option(
            "--expires-in",
            help="Lifetime such as 30d or 12h; without it the token does not expire.",
            show_default=False,
        ),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(
            help="Create it for this user (admins only); default: yourself.", show_default=False
        ),
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Create an API token and print its secret, which is shown only this once."""
    payload: dict[str, Any] = {"name": name}
    if expires_in is not None:
        from opsflow.spec.duration import (
            parse_duration,
        )  # the one duration parser; pydantic is slow to import

        try:
            seconds = parse_duration(expires_in)
        except ValueError as exc:
            raise UsageError(f"--expires-in: {exc}") from None
        if seconds <= 0:
            raise UsageError("--expires-in must be longer than zero", hint="e.g. --expires-in 30d")
        payload["expires_in"] = expires_in
    if user is not None:
        payload["user"] = user
    body = client_for(ctx).post("/tokens", json=payload)
    if output is OutputFormat.JSON:
        print_json(body)
        return
    expires = age(body["expires_at"]) if body.get("expires_at") else "never"
    say(f"created token {body.get('id')} for {body.get('user')} (expires: {expires})")
    say(f"token: {body.get('token')}")
    say("(shown once: store it now, e.g. as OPSFLOW_TOKEN)")


@app.command()
def revoke(
    ctx: typer.Context,
    token_id: Annotated[
        str, typer.Argument(help="The token's id (see tokens list).", show_default=False)
    ],
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Revoke a token: requests using it are refused from now on."""
    body = client_for(ctx).delete(f"/tokens/{token_id}")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    say(f"{token_id}: revoked")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="tokens")
