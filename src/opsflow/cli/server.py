"""``opsflow server``: run the API, the runtime and (by default) the local agent in one process.

Options left out fall back to the environment (``OPSFLOW_*``) and then to the defaults in
:class:`opsflow.config.Settings`, so the flags only ever override; the one place that knows the
defaults is the config module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from opsflow.config import ServerRole


def server(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Database URL: sqlite:///path.db (default: in the data dir) or "
            "postgresql://user@host/db.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on.", show_default=False)
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="Port to listen on [default: 8321].", show_default=False
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="Where people open this server (behind a proxy: the proxy's URL), for links "
            "in notifications [default: from --host and --port].",
            show_default=False,
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Where the SQLite database, bundles, logs and the admin token live.",
            show_default=False,
            file_okay=False,
        ),
    ] = None,
    role: Annotated[
        ServerRole | None,
        typer.Option(
            "--role",
            help="What this replica does when several share one PostgreSQL: api (HTTP, SSE, "
            "trigger ingress), worker (timers, schedules, lease sweeps, the local agent) or "
            "all [default: all].",
            case_sensitive=False,
            show_default=False,
        ),
    ] = None,
    local_agent: Annotated[
        bool | None,
        typer.Option(
            "--local-agent/--no-local-agent",
            help="Run jobs in this process (on by default); turn off when remote agents do it.",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", min=1, help="Jobs the local agent runs at once.", show_default=False
        ),
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Load the example workflows on start.")
    ] = False,
) -> None:
    """Start the opsflow server: the HTTP API, the durable runtime and the local agent."""
    # imported here: the server stack is heavy and every other command should start fast
    from opsflow.api.server import run_server
    from opsflow.config import Settings

    overrides: dict[str, Any] = {
        "db_url": db,
        "host": host,
        "port": port,
        "public_url": public_url,
        "data_dir": data_dir,
        "role": role,
        "local_agent": local_agent,
        "local_agent_concurrency": concurrency,
        "demo": demo or None,
    }
    settings = Settings.from_env(**{k: v for k, v in overrides.items() if v is not None})
    run_server(settings)


def register(app: typer.Typer) -> None:
    app.command()(server)
