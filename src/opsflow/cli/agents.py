"""``opsflow agents list|show|drain|undrain``: the agents the server has seen."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from opsflow.cli.client import client_for
from opsflow.cli.output import (
    OutputFormat,
    OutputOption,
    age,
    cell,
    items_of,
    print_json,
    say,
    table,
)

app = typer.Typer(help="List, inspect and drain agents.", no_args_is_help=True)

AgentId = Annotated[
    str, typer.Argument(help="The agent's id (see agents list).", show_default=False)
]


def _state(agent: dict[str, Any]) -> str:
    state = "online" if agent.get("online") else "offline"
    return f"{state}, draining" if agent.get("draining") else state


def _labels(agent: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((agent.get("labels") or {}).items())) or "-"


@app.command("list")
def list_agents(ctx: typer.Context, output: OutputOption = OutputFormat.TEXT) -> None:
    """Every agent the server has seen, most recently seen first."""
    body = client_for(ctx).get("/agents")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    table(
        ["ID", "POOLS", "LABELS", "STATE", "RUNNING", "DONE", "FAILED", "VERSION", "LAST SEEN"],
        [
            [
                cell(a.get("id")),
                ",".join(a.get("pools") or []),
                _labels(a),
                _state(a),
                str(len(a.get("running") or [])),
                cell(a.get("jobs_done")),
                cell(a.get("jobs_failed")),
                cell(a.get("version")),
                age(a.get("last_seen")),
            ]
            for a in items_of(body)
        ],
    )


def _show(agent: dict[str, Any]) -> None:
    table(
        ["FIELD", "VALUE"],
        [
            ["id", cell(agent.get("id"))],
            ["pools", ",".join(agent.get("pools") or [])],
            ["labels", _labels(agent)],
            ["state", _state(agent)],
            ["version", cell(agent.get("version"))],
            ["hostname", cell(agent.get("hostname"))],
            ["running", ", ".join(agent.get("running") or []) or "-"],
            ["jobs done", cell(agent.get("jobs_done"))],
            ["jobs failed", cell(agent.get("jobs_failed"))],
            ["last seen", age(agent.get("last_seen"))],
            ["first seen", age(agent.get("first_seen"))],
        ],
    )


@app.command()
def show(ctx: typer.Context, agent_id: AgentId, output: OutputOption = OutputFormat.TEXT) -> None:
    """One agent: pools, labels, state, running jobs, counts."""
    body = client_for(ctx).get(f"/agents/{agent_id}")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    _show(body)


@app.command()
def drain(
    ctx: typer.Context,
    agent_id: AgentId,
    undo: Annotated[bool, typer.Option("--undo", help="Let it claim jobs again.")] = False,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Give an agent no more jobs (within a few seconds); its running jobs finish."""
    body = client_for(ctx).post(f"/agents/{agent_id}/{'undrain' if undo else 'drain'}")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    running = len(body.get("running") or [])
    if undo:
        say(f"{agent_id}: takes jobs again")
    else:
        say(f"{agent_id}: draining; {running} running job(s) will finish")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="agents")
