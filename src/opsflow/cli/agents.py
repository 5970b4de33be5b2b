"""``opsflow agents list|show|drain|revoke`` and ``opsflow agents tokens create|list``: the
agents the server has seen, and the pool-bound tokens they register with."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from opsflow.cli import ids
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
from opsflow.words import counted

app = typer.Typer(
    help="List, inspect, drain and revoke agents; create their tokens.", no_args_is_help=True
)
tokens = typer.Typer(
    help="Agent tokens: each binds the agents that use it to one pool.", no_args_is_help=True
)
app.add_typer(tokens, name="tokens")

AgentId = Annotated[
    str,
    typer.Argument(
        help="The agent's id, or the start of it (see agents list).", show_default=False
    ),
]


def _state(agent: dict[str, Any]) -> str:
    """online, offline, or revoked (its agent token was revoked: refused and offline); with
    ", draining" when it gets no more jobs."""
    state = "online" if agent.get("online") else "offline"
    state = "revoked" if agent.get("revoked") else state
    return f"{state}, draining" if agent.get("draining") else state


def _labels(agent: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((agent.get("labels") or {}).items())) or "-"


class AgentState(StrEnum):
    online = "online"
    offline = "offline"
    revoked = "revoked"
    draining = "draining"


@app.command("list")
def list_agents(
    ctx: typer.Context,
    pool: Annotated[
        str | None, typer.Option("--pool", help="Only agents serving this pool.")
    ] = None,
    state: Annotated[
        AgentState | None,
        typer.Option("--state", help="Only agents in this state (online includes draining)."),
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Every agent the server has seen (of a pool, in a state), most recently seen first."""
    params = {"pool": pool, "state": state.value if state else None}
    body = client_for(ctx).get("/agents", params=params)
    if output is OutputFormat.JSON:
        print_json(body)
        return
    table(
        [
            "ID",
            "POOLS",
            "LABELS",
            "STATE",
            "RUNNING",
            "CONCURRENCY",
            "DONE",
            "FAILED",
            "VERSION",
            "LAST SEEN",
        ],
        [
            [
                cell(a.get("id")),
                ",".join(a.get("pools") or []),
                _labels(a),
                _state(a),
                str(len(a.get("running") or [])),
                cell(a.get("concurrency")),
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
            ["token", cell(agent.get("token_id"))],
            ["running", ", ".join(agent.get("running") or []) or "-"],
            ["concurrency", cell(agent.get("concurrency"))],
            ["jobs done", cell(agent.get("jobs_done"))],
            ["jobs failed", cell(agent.get("jobs_failed"))],
            ["last seen", age(agent.get("last_seen"))],
            ["first seen", age(agent.get("first_seen"))],
        ],
    )


@app.command()
def show(ctx: typer.Context, agent_id: AgentId, output: OutputOption = OutputFormat.TEXT) -> None:
    """One agent: pools, labels, state, running jobs, job slots (concurrency), counts."""
    client = client_for(ctx)
    body = client.get(f"/agents/{ids.agent_id(client, agent_id)}")
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
    """Give an agent no more jobs, from now on; its running jobs finish."""
    client = client_for(ctx)
    agent_id = ids.agent_id(client, agent_id)
    body = client.post(f"/agents/{agent_id}/{'undrain' if undo else 'drain'}")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    running = len(body.get("running") or [])
    if undo:
        say(f"{agent_id}: takes jobs again")
    else:
        say(f"{agent_id}: draining; {counted(running, 'running job')} will finish")


@app.command()
def revoke(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            help="An agent token's id (atk_...) or an agent's id: then the token it used.",
            show_default=False,
        ),
    ],
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Revoke an agent token at once: its agents are refused from now on (a waiting claim
    included) and their running jobs become "agent lost" when their leases expire."""
    client = client_for(ctx)
    if target.startswith("atk_"):
        body = client.delete(f"/agents/tokens/{target}")
    else:
        body = client.post(f"/agents/{ids.agent_id(client, target)}/revoke")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    used = ", ".join(body.get("agents") or []) or "no agent yet"
    # Revoking is idempotent: a token revoked before answers with its first revocation time.
    say(
        f"{body.get('id')} (pool {body.get('pool')}): revoked at {body.get('revoked_at')}; "
        f"it was used by {used}"
    )


@tokens.command("create")
def create_token(
    ctx: typer.Context,
    pool: Annotated[
        str, typer.Option("--pool", help="The pool its agents serve.", show_default=False)
    ],
    name: Annotated[str, typer.Option("--name", help="What it is for, e.g. eu-hosts.")] = "",
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Create an agent token of one pool and print its secret, which is shown only this once."""
    client = client_for(ctx)
    body = client.post("/agents/tokens", json={"pool": pool, "name": name})
    if output is OutputFormat.JSON:
        print_json(body)
        return
    say(f"created agent token {body.get('id')} for pool {body.get('pool')}")
    say(f"token: {body.get('token')}")
    # In the environment, not as --token: every user of the host can read a command line.
    say(
        "(shown once: start its agents with "
        f"`OPSFLOW_TOKEN=<token> opsflow agent --server {client.connection.url}`)"
    )


@tokens.command("list")
def list_tokens(ctx: typer.Context, output: OutputOption = OutputFormat.TEXT) -> None:
    """Every agent token (never its secret), newest first, with the agents that used it."""
    body = client_for(ctx).get("/agents/tokens")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    table(
        ["ID", "NAME", "POOL", "PREFIX", "STATE", "CREATED", "LAST USED", "AGENTS"],
        [
            [
                cell(t.get("id")),
                cell(t.get("name")),
                cell(t.get("pool")),
                cell(t.get("prefix")),
                "active" if t.get("active") else "revoked",
                age(t.get("created_at")),
                age(t.get("last_used_at")) if t.get("last_used_at") else "never",
                ", ".join(t.get("agents") or []) or "-",
            ]
            for t in items_of(body)
        ],
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="agents")
