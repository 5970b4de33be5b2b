"""``opsflow tfstate ...``: the Terraform states opsflow keeps, their history and their locks."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from opsflow.cli.client import client_for
from opsflow.cli.output import (
    OutputFormat,
    OutputOption,
    age,
    cell,
    confirm,
    items_of,
    print_json,
    say,
    table,
)

app = typer.Typer(
    help="Terraform state kept by opsflow: list, show, history, unlock.", no_args_is_help=True
)

NameArgument = Annotated[
    str,
    typer.Argument(help="The state's name, e.g. deploy/default/infra.", show_default=False),
]


def _path(name: str) -> str:
    return "/tfstate/" + quote(name.strip("/"), safe="/")


def _writer(version: dict[str, Any]) -> str:
    if version.get("execution_id"):
        return f"execution {version['execution_id']}, step {version.get('step_id')}"
    return f"user {version.get('written_by')}" if version.get("written_by") else "-"


def _lock(lock: dict[str, Any] | None) -> str:
    return f"locked by {lock.get('holder')}" if lock else "-"


@app.command("list")
def list_states(ctx: typer.Context, output: OutputOption = OutputFormat.TEXT) -> None:
    """List every state with its latest serial, size and lock holder."""
    body = client_for(ctx).get("/tfstate")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    rows = []
    for state in items_of(body):
        current = state.get("current") or {}
        rows.append(
            [
                cell(state.get("name")),
                cell(current.get("serial")) if current else "(deleted)",
                cell(state.get("versions")),
                cell(current.get("size")),
                age(state.get("updated_at")),
                _lock(state.get("lock")),
            ]
        )
    table(["NAME", "SERIAL", "VERSIONS", "BYTES", "UPDATED", "LOCK"], rows)


@app.command()
def show(
    ctx: typer.Context,
    name: NameArgument,
    version: Annotated[
        int | None,
        typer.Option(
            "--version", help="This version (see history); default: the newest.", show_default=False
        ),
    ] = None,
) -> None:
    """Print a state document (JSON), the newest version or the one asked for."""
    client = client_for(ctx)
    if version is None:
        versions = items_of(client.get(_path(name) + "/versions"))
        if not versions:
            say(f"state {name!r} has no versions yet")
            raise typer.Exit(1)
        version = int(versions[0]["version"])
    body = client.get(f"{_path(name)}/versions/{version}")
    print_json(body.get("state"))


@app.command()
def history(
    ctx: typer.Context, name: NameArgument, output: OutputOption = OutputFormat.TEXT
) -> None:
    """List every version of a state, newest first, with who wrote it."""
    body = client_for(ctx).get(_path(name) + "/versions")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    table(
        ["VERSION", "SERIAL", "BYTES", "TERRAFORM", "WRITTEN", "BY"],
        [
            [
                cell(v.get("version")),
                cell(v.get("serial")),
                cell(v.get("size")),
                cell(v.get("terraform_version")),
                age(v.get("created_at")),
                _writer(v),
            ]
            for v in items_of(body)
        ],
    )


@app.command()
def unlock(
    ctx: typer.Context,
    name: NameArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a state's lock, whoever holds it (admins; for a holder that is gone)."""
    confirm(f"remove the lock on Terraform state {name!r}?", yes=yes)
    body = client_for(ctx).post(_path(name) + "/force-unlock")
    released = body.get("released")
    if released:
        say(f"unlocked {name}: the lock was held by {released.get('holder')}")
    else:
        say(f"{name} was not locked")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="tfstate")
