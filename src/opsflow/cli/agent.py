"""``opsflow agent``: run jobs for a server from another machine, over the agent protocol.

The agent registers with its persistent id (``<work-dir>/agent-id``), waits on the server for
jobs of its pools that its labels allow, and runs them with the same executors and job loop
as the server's own agent. While the server is unreachable its jobs go on and what they have
to say waits in ``<work-dir>/spool`` (`opsflow.agent.spool`) to be delivered once it is back;
a job whose report the server keeps failing for ``--give-up-after`` seconds is given up (its
lease runs out and the server retries it as "agent lost").
SIGTERM (or Ctrl-C) drains: no new claims, jobs in hand finish, those still running after
``--grace`` are stopped and handed back; then it exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from pathlib import Path
from typing import Annotated

import typer

from opsflow.auth.logmask import CHATTY_LOGGERS
from opsflow.cli.output import CliError
from opsflow.errors import Unauthorized

# opsflow.agent.outbox.DEFAULT_GIVE_UP_AFTER, written out: importing the agent's modules would
# slow every CLI command's start (a unit test keeps the two equal).
GIVE_UP_AFTER = 300.0


def _labels(values: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--label {value!r}: write it as key=value, e.g. --label region=eu")
        labels[key.strip()] = val.strip()
    return labels


def _shown(labels: dict[str, str]) -> str:
    """``region=eu,tier=db``: labels as ``--label`` takes them."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def agent(
    server: Annotated[
        list[str],
        typer.Option(
            "--server",
            envvar="OPSFLOW_URL",
            help="The server's URL; repeat it (or separate by commas) for several replicas "
            "without a load balancer: the agent moves to the next when one does not answer.",
            show_default=False,
        ),
    ],
    token: Annotated[
        str,
        typer.Option(
            "--token",
            envvar="OPSFLOW_TOKEN",
            help="An agent token (opfa_...): `opsflow agents tokens create --pool P`. Give "
            "it in the OPSFLOW_TOKEN environment variable: on the command line every user of "
            "the machine can read it in the process list.",
            show_default=False,
        ),
    ],
    pool: Annotated[
        str | None,
        typer.Option(
            "--pool", help="The pool to serve, which must be the token's (by default the token's)."
        ),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="A label as key=value (repeatable), e.g. region=eu."),
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Jobs at once.")] = 4,
    work_dir: Annotated[
        Path,
        typer.Option(
            "--work-dir",
            file_okay=False,
            help="The agent's id, its cache of workflow files and its jobs' directories.",
        ),
    ] = Path("opsflow-agent"),
    grace: Annotated[
        float,
        typer.Option(
            "--grace", min=0, help="Seconds a drain waits for running jobs before handing back."
        ),
    ] = 60.0,
    spool_max_mb: Annotated[
        int,
        typer.Option(
            "--spool-max-mb",
            min=1,
            help="Most log data (MiB) kept in <work-dir>/spool while the server is unreachable.",
        ),
    ] = 512,
    give_up_after: Annotated[
        float,
        typer.Option(
            "--give-up-after",
            min=1,
            help="Seconds the agent keeps retrying a job's report (or start, or file fetch) "
            "while the server fails it (5xx, no answer) before it gives the job up: it stops "
            "renewing the job's lease, so the server declares the attempt lost and retries it.",
        ),
    ] = GIVE_UP_AFTER,
) -> None:
    """Run jobs for an opsflow server: register, wait for work, run it, report."""
    import opsflow
    from opsflow.agent.http_client import HttpClient
    from opsflow.agent.identity import AgentDirInUse, lock_agent_dir, persistent_agent_id
    from opsflow.agent.loop import REFUSED, Agent
    from opsflow.agent.spool import Spool

    labels = _labels(label or [])
    servers = [url.strip() for value in server for url in value.split(",") if url.strip()]
    if not servers:
        raise CliError("--server: give the server's URL, e.g. --server https://opsflow:8080")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for name in CHATTY_LOGGERS:  # per-request and per-SSH-session lines say nothing useful
        logging.getLogger(name).setLevel(logging.WARNING)
    root = work_dir.resolve()
    # First, before the id is read and before the start-up sweep kills what a previous agent
    # of this work dir left running: a live one's jobs are not leftovers.
    try:
        hold = lock_agent_dir(root)
    except AgentDirInUse as exc:
        raise CliError(
            f"work dir {root} is in use by another agent ({exc.holder_text}); "
            "give each agent its own --work-dir"
        ) from None
    agent_id = persistent_agent_id(root, prefix="agent")

    def serving(pools: list[str]) -> None:
        """Said once the server accepted the registration, never before: a wrong pool or a
        bad token ends the agent with an error instead."""
        logging.info(
            "agent %s serving pool %s%s with %s (%d at once) for %s",
            agent_id,
            ", ".join(pools),
            "" if pool else " (its token's)",
            f"labels {_shown(labels)}" if labels else "no labels",
            concurrency,
            ", ".join(servers),
        )

    async def serve() -> None:
        client = HttpClient(servers, token)
        runner = Agent(
            client,
            agent_id=agent_id,
            pools=[pool] if pool else [],
            labels=labels,
            concurrency=concurrency,
            work_root=root / "jobs",
            version=opsflow.__version__,
            hostname=socket.gethostname(),
            spool=Spool(root / "spool", max_bytes=spool_max_mb * 1024 * 1024),
            give_up_after=give_up_after,
            on_serving=serving,
        )
        loop = asyncio.get_running_loop()
        draining: list[asyncio.Task[None]] = []

        def drain() -> None:
            if not draining:
                logging.info("stopping: no new jobs; %d running", runner.running)
                draining.append(asyncio.create_task(runner.drain(grace)))

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, drain)
        try:
            await runner.run()
            if draining:
                await draining[0]
        finally:
            await client.close()

    try:
        asyncio.run(serve())
    except Unauthorized as exc:
        # One line, no traceback: the token was revoked (or is not an agent token).
        raise CliError(f"{REFUSED} ({exc.message})") from None
    finally:
        hold.release()


def register(app: typer.Typer) -> None:
    app.command()(agent)
