"""``opsflow connections ...``: list, set, test and delete connections (values write-only).

``set`` takes the values from a YAML/JSON file (``--from-file``, ``-`` for stdin) and from
single fields: ``--field user=deploy`` for plain settings, ``--field-file private_key=PATH``
for anything secret. A credential (a key, password, token, Apprise URL, Terraform variable)
is refused on the command line, where shell history and the process list would keep it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from opsflow.cli.client import client_for, delete_confirmed
from opsflow.cli.output import (
    CliError,
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
    help="List, set, test and delete connections: named, typed credentials that steps use.",
    no_args_is_help=True,
)

TYPES = ("ssh", "http", "notify", "terraform", "git")
# The fields that are credentials, per type (terraform: every variable); the server masks
# them in logs. Here they decide what may not be given on the command line.
CREDENTIALS = {
    "ssh": {"private_key", "passphrase", "password"},
    "http": {"token", "password", "header_value"},
    "notify": {"url"},
    "git": {"token", "deploy_key"},
}

NameArgument = Annotated[
    str,
    typer.Argument(
        help="The connection's name: letters, digits, '-', '_' and '.', e.g. prod-ssh.",
        show_default=False,
    ),
]


def _last_test(c: dict[str, Any]) -> str:
    ok = c.get("last_test_ok")
    if ok is None:
        return "never"
    return f"{'ok' if ok else 'failed'} {age(c.get('last_tested_at'))}"


@app.command("list")
def list_connections(ctx: typer.Context, output: OutputOption = OutputFormat.TEXT) -> None:
    """List connections: name, type, whether enabled, the last test; never values."""
    body = client_for(ctx).get("/connections")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    table(
        ["NAME", "TYPE", "ENABLED", "FIELDS", "LAST TEST", "DESCRIPTION"],
        [
            [
                cell(c.get("name")),
                cell(c.get("type")),
                "yes" if c.get("enabled") else "no",
                ", ".join(c.get("fields") or []) or "-",
                _last_test(c),
                cell(c.get("description")),
            ]
            for c in items_of(body)
        ],
    )


def _split(item: str, option: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise UsageError(f"{option} {item!r}: write FIELD=VALUE")
    return name.strip(), value


def _read_file(source: str) -> dict[str, Any]:
    text = sys.stdin.read() if source == "-" else _text_of(Path(source), "--from-file")
    try:
        loaded = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise UsageError(f"--from-file {source}: not YAML or JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise UsageError(f"--from-file {source}: expected a mapping of field: value")
    return loaded


def _text_of(path: Path, option: str) -> str:
    try:
        return path.expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None


def _values(
    kind: str, from_file: str | None, fields: list[str], field_files: list[str]
) -> dict[str, Any]:
    """The values from the file, then ``--field``, then ``--field-file``; a terraform
    connection's single fields are its variables."""
    values = _read_file(from_file) if from_file else {}
    singles: dict[str, Any] = {}
    for item in fields:
        name, value = _split(item, "--field")
        if kind == "terraform" or name in CREDENTIALS.get(kind, set()):
            raise UsageError(
                f"--field {name}: a credential does not go on the command line (shell "
                "history, the process list)",
                hint=f"use --field-file {name}=PATH or --from-file (- reads stdin)",
            )
        singles[name] = value
    for item in field_files:
        name, path = _split(item, "--field-file")
        singles[name] = _text_of(Path(path), "--field-file").rstrip("\n") + (
            "\n" if name in ("private_key", "deploy_key", "known_hosts") else ""
        )
    if kind == "terraform":
        env = dict(values.get("env") or {})
        env.update(singles)
        return {**values, "env": env} if env else values
    return {**values, **singles}


@app.command("set")
def set_connection(
    ctx: typer.Context,
    name: NameArgument,
    kind: Annotated[
        str | None,
        typer.Option(
            "--type", help=f"One of {', '.join(TYPES)}; leave out to only --enable/--disable."
        ),
    ] = None,
    from_file: Annotated[
        str | None,
        typer.Option(
            "--from-file", help="YAML or JSON mapping of field: value; - reads standard input."
        ),
    ] = None,
    field: Annotated[
        list[str],
        typer.Option("--field", help="FIELD=VALUE for a plain setting (user, port, base_url)."),
    ] = [],  # noqa: B006 (typer reads the default)
    field_file: Annotated[
        list[str],
        typer.Option("--field-file", help="FIELD=PATH: the field's value is the file's text."),
    ] = [],  # noqa: B006
    keep: Annotated[
        list[str], typer.Option("--keep", help="Keep this field's current value (repeat).")
    ] = [],  # noqa: B006
    description: Annotated[
        str | None, typer.Option(help="What it is for; kept when left out.", show_default=False)
    ] = None,
    enabled: Annotated[
        bool | None,
        typer.Option("--enable/--disable", help="Steps naming a disabled one fail at once."),
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Create a connection or replace its values (or only enable or disable it)."""
    client = client_for(ctx)
    if kind is None:
        if from_file or field or field_file or keep:
            raise UsageError("give --type with values", hint=f"--type {'|'.join(TYPES)}")
        if enabled is None and description is None:
            raise UsageError("nothing to do: give --type and values, or --enable/--disable")
        body = client.patch(
            f"/connections/{name}", json={"enabled": enabled, "description": description}
        )
        if output is OutputFormat.JSON:
            print_json(body)
            return
        say(f"connection {name} {'enabled' if body.get('enabled') else 'disabled'}")
        return
    payload: dict[str, Any] = {
        "type": kind,
        "values": _values(kind, from_file, field, field_file),
        "keep": keep,
    }
    if description is not None:
        payload["description"] = description
    if enabled is not None:
        payload["enabled"] = enabled
    body = client.put(f"/connections/{name}", json=payload)
    if output is OutputFormat.JSON:
        print_json(body)
        return
    verb = "created" if body.get("created") else "replaced"
    fields = ", ".join(body.get("fields") or [])
    say(f"{verb} {body.get('type')} connection {body.get('name')} ({fields})")
    say(f"use it in a step as {body.get('reference')}")
    say(f"check it with: opsflow connections test {name}")


@app.command()
def test(
    ctx: typer.Context,
    name: NameArgument,
    timeout: Annotated[float, typer.Option(help="Seconds the check may take.")] = 10.0,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Check a connection for real from the server (an HTTP request, an SSH login running
    true, ...) and record the outcome; exits 1 when it failed."""
    with stderr.status(f"testing connection {name}..."):
        body = client_for(ctx).post(f"/connections/{name}/test?timeout={timeout:g}")
    if output is OutputFormat.JSON:
        print_json(body)
    else:
        outcome = "ok" if body.get("ok") else "failed"
        say(f"{name}: {outcome} in {body.get('duration_ms')} ms: {body.get('detail')}")
    if not body.get("ok"):
        raise CliError(f"connection {name} failed its test: {body.get('detail')}")


@app.command()
def delete(
    ctx: typer.Context,
    name: NameArgument,
    yes: YesOption = False,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Delete a connection; steps that name it fail at once from then on."""
    delete_confirmed(
        ctx,
        f"/connections/{name}",
        name,
        f"delete connection {name}? steps that use it will fail",
        yes=yes,
        output=output,
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="connections")
