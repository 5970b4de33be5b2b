"""`run_server(settings)`: what ``opsflow server`` runs (uvicorn, one process)."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from opsflow.api.app import create_app
from opsflow.auth.bootstrap import PASSWORD_FILE, TOKEN_FILE
from opsflow.auth.logmask import SERVER_LOG_FILTER
from opsflow.config import Settings
from opsflow.runtime.host import lock_data_dir

log = logging.getLogger("opsflow.server")

# The event loop ``opsflow server`` runs on, picked explicitly rather than left to uvicorn
# (which takes uvloop when it is installed). Measured through the real server on this
# workload (benchmarks/server_bench.py, see benchmarks/README.md): starting a step's process
# under uvloop blocks the loop for milliseconds (libuv forks the whole server and waits for the
# child's exec; the standard loop uses vfork), and the standard loop ran the 40-step chain
# faster on SQLite (2.3-3.1 s against 3.7-5.3 s on a loaded machine) and as fast on PostgreSQL.
EVENT_LOOP = "asyncio"


def banner(settings: Settings) -> str:
    """The start-up lines: where to point a browser and the CLI, and how to log in."""
    data = settings.data_dir.resolve()
    if not settings.role.serves_api:
        return "\n".join(
            [
                f"opsflow worker running; health probes on {settings.base_url}/healthz",
                f"  database:  {settings.db_url.split('@')[-1]}",
                "  the API, SSE and webhooks are served by the api replicas",
            ]
        )
    lines = [
        f"opsflow listening on {settings.base_url}",
        f"  API docs:  {settings.base_url}/api/v1/docs",
        f"  database:  {settings.db_url.split('@')[-1]}",
    ]
    if settings.public_url:
        lines.append(f"  links in notifications: {settings.public_base}")
    else:
        lines.append(
            f"  links in notifications: {settings.public_base} (set OPSFLOW_PUBLIC_URL to the "
            "address people use, e.g. behind a proxy)"
        )
    if settings.admin_password:
        lines.append("  log in as admin with the password from OPSFLOW_ADMIN_PASSWORD")
    elif (data / PASSWORD_FILE).exists():
        lines.append(f"  log in as admin with the password in {data / PASSWORD_FILE}")
    else:
        # The admin was made by another server on this database (a replica), or this data dir
        # was emptied since: the file is where that server wrote it, not here.
        lines.append(
            f"  log in as admin with the password its first server wrote ({PASSWORD_FILE} in "
            "that server's data dir): the admin exists already"
        )
    if (data / TOKEN_FILE).exists():
        # The CLI reads <OPSFLOW_DATA_DIR or ./data>/admin-token (`opsflow.cli.client`).
        here = Path.cwd()
        if data.resolve() == (here / "data").resolve():
            how = f"the CLI run in {here} reads it; elsewhere set OPSFLOW_DATA_DIR={data.resolve()}"
        else:
            how = f"the CLI reads it with OPSFLOW_DATA_DIR={data.resolve()}"
        lines.append(f"  API token for the CLI: {data / TOKEN_FILE} ({how})")
    else:
        lines.append(
            "  API token for the CLI: none in this data dir (the admin was made elsewhere): "
            "make one with `opsflow tokens create` where a token is, and set OPSFLOW_TOKEN"
        )
    return "\n".join(lines)


class _AnnouncingServer(uvicorn.Server):
    """uvicorn's server that prints the banner once it listens: after the lifespan (migrations,
    bootstrap, runtime) has started and the socket is bound, never before."""

    def __init__(self, config: uvicorn.Config, settings: Settings, app: FastAPI) -> None:
        super().__init__(config)
        self.settings = settings
        self.app = app

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            # Written now, after the lifespan's bootstrap: it names the files it wrote.
            print(banner(self.settings), flush=True)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn waits for every open request before the lifespan's shutdown: the requests
        # that wait for news (agents' claims, up to 30 s; live streams, for ever) must answer
        # or end first, or stopping the server waits for them.
        services = getattr(self.app.state, "services", None)
        host = services.extra.get("runtime") if services is not None else None
        if host is not None:
            host.bus.stop_waits()
        await super().shutdown(sockets=sockets)


def run_server(settings: Settings) -> None:
    """Serve until interrupted; the app's lifespan migrates, bootstraps and starts everything,
    and the banner says "listening" only when requests are answered.

    Every log handler (ours and uvicorn's) masks every secret value the server knows, and the
    HTTP libraries' per-request lines are off (see `opsflow.auth.logmask`).
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.local_agent and settings.role.does_work:
        # The lifespan takes the data dir for the local agent (`runtime.host`); a dir another
        # server holds is said here as one `error:` line (exit 1), not as a traceback of the
        # lifespan's failure.
        lock_data_dir(Path(settings.data_dir).resolve()).release()
    app = create_app(settings)
    # ws="none": opsflow serves no WebSocket (live updates are SSE), and uvicorn's default
    # would import the websockets package (about 2.5 MB an idle server holds for nothing).
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="info", loop=EVENT_LOOP, ws="none"
    )
    SERVER_LOG_FILTER.install()  # after uvicorn's own logging set-up, so its handlers too
    _AnnouncingServer(config, settings, app).run()
