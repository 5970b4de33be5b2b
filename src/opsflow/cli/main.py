"""The ``opsflow`` command: global connection options and the list of every command module.

Each command module exposes ``register(app)``; :data:`COMMAND_MODULES` is the one list that
decides what the CLI offers, in help order. Errors raised below a command as ``OpsflowError``
(``CliError`` for the CLI's own) are printed here, once, as ``error: ...`` lines on stderr.
"""

from __future__ import annotations

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
