"""The ``opsflow`` command: global connection options and the list of every command module.

Each command module exposes ``register(app)``; :data:`COMMAND_MODULES` is the one list that
decides what the CLI offers, in help order. Errors raised below a command as ``OpsflowError``
(``CliError`` for the CLI's own) are printed here, once, as ``error: ...`` lines on stderr.
"""

from __future__ import annotations

import inspect
import re
import sys
from typing import Annotated, Any

import typer

from opsflow import __version__
from opsflow.cli import (
    agent,
    agents,
    analytics,
    apply,
    connections,
    control,
    me,
    runs,
    schedules,
    secrets,
    server,
    teams,
    tfstate,
    tokens,
    triggers,
    users,
    validate,
    workflows,
)
from opsflow.cli.client import DEFAULT_URL, Connection
from opsflow.cli.output import CliError, report_error
from opsflow.errors import OpsflowError


class OpsflowApp(typer.Typer):
    """A Typer app that prints opsflow errors as plain ``error:`` lines, not tracebacks."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except CliError as exc:
            report_error(exc)
            sys.exit(exc.exit_code)
        except OpsflowError as exc:  # e.g. invalid server settings
            report_error(CliError(exc.message, problems=exc.problems))
            sys.exit(1)


app = OpsflowApp(
    name="opsflow",
    help="Durable DAG workflows for operations teams.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# Every command module, in help order. Adding a command group means adding its module here.
COMMAND_MODULES = (
    server,
    agent,
    agents,
    validate,
    apply,
    runs,
    control,
    workflows,
    triggers,
    users,
    teams,
    tokens,
    me,
    secrets,
    connections,
    schedules,
    tfstate,
    analytics,
)
for _module in COMMAND_MODULES:
    _module.register(app)


def _reflowed(text: str) -> str:
    """``text`` (a docstring) with each paragraph on one line, so the terminal wraps it at
    its own width: Rich's command lists keep a docstring's line breaks, which then fall
    mid-sentence."""
    paragraphs = re.split(r"\n\s*\n", inspect.cleandoc(text))
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def reflow_help(typer_app: typer.Typer) -> None:
    """Give every command and group of ``typer_app`` (recursively) its help reflowed."""
    for command in typer_app.registered_commands:
        text = command.help or (command.callback.__doc__ if command.callback else None)
        if text:
            command.help = _reflowed(text)
    for group in typer_app.registered_groups:
        inner = group.typer_instance
        if group.help:
            group.help = _reflowed(group.help)
        if inner is not None:
            if isinstance(inner.info.help, str):
                inner.info.help = _reflowed(inner.info.help)
            reflow_help(inner)


reflow_help(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"opsflow {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str,
        typer.Option(envvar="OPSFLOW_URL", help="Where the opsflow server listens."),
    ] = DEFAULT_URL,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="OPSFLOW_TOKEN",
            help="API token; on the server's machine the admin token in the data dir "
            "(OPSFLOW_DATA_DIR or ./data) is used when none is given.",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Durable DAG workflows for operations teams: scripts, HTTP, Terraform, Ansible, approvals."""
    ctx.obj = Connection.resolve(url, token)
