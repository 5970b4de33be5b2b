"""``opsflow secrets ...``: set, list and delete secrets; a value goes in and never comes out."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

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

app = typer.Typer(
    help="Set, list and delete secrets (values are write-only).", no_args_is_help=True
)

NameArgument = Annotated[
    str,
    typer.Argument(
        help="The secret's name: letters, digits and '_', e.g. DB_PASSWORD.", show_default=False
    ),
]


@app.command("list")
def list_secrets(ctx: typer.Context, output: OutputOption = OutputFormat.TEXT) -> None:
    """List secrets: names and who changed them when, never values."""
    body = client_for(ctx).get("/secrets")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    table(
        ["NAME", "DESCRIPTION", "VERSION", "UPDATED", "UPDATED BY"],
        [
            [
                cell(s.get("name")),
                cell(s.get("description")),
                cell(s.get("version")),
                age(s.get("updated_at")),
                cell(s.get("updated_by")),
            ]
            for s in items_of(body)
        ],
    )


def _read_value(from_stdin: bool, value: str | None) -> str:
    """The value from exactly one source: stdin, ``--value``, or a hidden prompt."""
    if from_stdin and value is not None:
        raise UsageError("give --from-stdin or --value, not both")
    if value is not None:
        stderr.print(
            "warning: --value leaves the secret in your shell history and the process list; "
            "prefer --from-stdin",
            markup=False,
        )
        return value
    if from_stdin:
        text = sys.stdin.read()
        # One trailing newline is what `echo` and editors add, not part of a one-line value;
        # a multi-line value (a PEM key) keeps its final newline, which some tools require.
        body = text[:-1] if text.endswith("\n") else text
        body = body[:-1] if body.endswith("\r") else body
        return text if ("\n" in body or "\r" in body) else body
    if not sys.stdin.isatty():
        raise UsageError(
            "no value given",
            hint="pipe it in with --from-stdin, e.g. `opsflow secrets set "
            "DB_PASSWORD --from-stdin < password.txt`",
        )
    entered: str = typer.prompt("Value", hide_input=True, confirmation_prompt=True)
    return entered


@app.command("set")
def set_secret(
    ctx: typer.Context,
    name: NameArgument,
    from_stdin: Annotated[
        bool, typer.Option("--from-stdin", help="Read the value from standard input.")
    ] = False,
    value: Annotated[
        str | None,
        typer.Option(
            help="The value on the command line (visible in shell history; prefer --from-stdin).",
            show_default=False,
        ),
    ] = None,
    description: Annotated[
        str | None,
        typer.Option(help="What the secret is for; kept when left out.", show_default=False),
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Create a secret or replace its value. Without --from-stdin or --value, ask for it."""
    payload: dict[str, Any] = {"value": _read_value(from_stdin, value)}
    if description is not None:
        payload["description"] = description
    body = client_for(ctx).put(f"/secrets/{name}", json=payload)
    if output is OutputFormat.JSON:
        print_json(body)
        return
    verb = "created" if body.get("created") else "replaced"
    say(f"{verb} secret {body.get('name')} (version {body.get('version')})")
    say(f"use it in a workflow as {body.get('reference')}")
    for warning in body.get("warnings") or []:
        stderr.print(f"warning: {warning}", markup=False)


@app.command()
def delete(
    ctx: typer.Context,
    name: NameArgument,
    yes: YesOption = False,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Delete a secret; workflows that use it fail from then on."""
    delete_confirmed(
        ctx,
        f"/secrets/{name}",
        name,
        f"delete secret {name}? workflows that use it will fail",
        yes=yes,
        output=output,
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="secrets")
