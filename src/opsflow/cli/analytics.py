"""``opsflow analytics``: the figures of ``GET /analytics`` as tables (``-o json`` passes the
API's JSON on)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from opsflow.cli.client import client_for
from opsflow.cli.output import OutputFormat, OutputOption, cell, print_json, say, table
from opsflow.spec.duration import format_duration


def _time(ms: Any) -> str:
    """Milliseconds as ``1m32s`` (whole seconds), ``850ms`` under a second, ``-`` when absent."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f}ms"
    return format_duration(round(ms / 1000))


def _rate(rate: Any) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def print_analytics(body: dict[str, Any]) -> None:
    """The answer of ``GET /analytics`` as one table per section."""
    w, s, ap = body["window"], body["summary"], body["approvals"]
    scope = w.get("workflow") or "all workflows"
    say(f"{scope}, executions created {w['since']} .. {w['until']}")
    table(
        ["EXECUTIONS", "COMPLETED", "FAILED", "OTHER", "SUCCESS", "AVG", "P95", "WORKFLOWS"],
        [
            [
                str(s["total_executions"]),
                str(s["completed"]),
                str(s["failed"]),
                str(s["other"]),
                _rate(s["success_rate"]),
                _time(s["avg_duration_ms"]),
                _time(s["p95_duration_ms"]),
                str(s["active_workflows"]),
            ]
        ],
        title="Summary",
    )
    table(
        ["DAY", "COMPLETED", "FAILED", "OTHER"],
        [[d["day"], str(d["completed"]), str(d["failed"]), str(d["other"])] for d in body["daily"]],
        title="Daily",
    )
    table(
        ["WORKFLOW", "RUNS", "SUCCESS", "AVG"],
        [
            [
                t["workflow_id"],
                str(t["runs"]),
                _rate(t["success_rate"]),
                _time(t["avg_duration_ms"]),
            ]
            for t in body["top_workflows"]
        ],
        title="Top workflows",
    )
    table(
        ["WORKFLOW", "STEP", "TYPE", "RUNS", "AVG", "MAX"],
        [
            [
                x["workflow_id"],
                x["step_id"],
                x["type"],
                str(x["runs"]),
                _time(x["avg_duration_ms"]),
                _time(x["max_duration_ms"]),
            ]
            for x in body["slowest_steps"]
        ],
        title="Slowest steps",
    )
    table(
        ["AGENT", "JOBS", "COMPLETED", "FAILED", "BUSY", "UTILIZATION"],
        [
            [
                a["agent_id"],
                str(a["jobs"]),
                str(a["completed"]),
                str(a["failed"]),
                _time(a["busy_ms"]),
                _rate(a["utilization"]),
            ]
            for a in body["agents"]
        ],
        title="Jobs per agent",
    )
    table(
        ["GATES", "PENDING", "DECIDED", "AVG WAIT", "P95 WAIT", "MAX WAIT"],
        [
            [
                cell(ap["total"]),
                cell(ap["pending"]),
                cell(ap["decided"]),
                _time(ap["avg_wait_ms"]),
                _time(ap["p95_wait_ms"]),
                _time(ap["max_wait_ms"]),
            ]
        ],
        title="Approval waits",
    )


def analytics(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(help="Window start: ISO 8601 date or time, or a duration back (7d, 12h)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Window end, exclusive (ISO 8601); default now.")
    ] = None,
    workflow: Annotated[str | None, typer.Option(help="Only this workflow's runs.")] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """How runs went: totals, success rate, durations, daily trend, top workflows, slowest
    steps, jobs per agent and approval waits (default: the last 30 days)."""
    params = {"since": since, "until": until, "workflow": workflow}
    body = client_for(ctx).get("/analytics", {k: v for k, v in params.items() if v})
    if output is OutputFormat.JSON:
        print_json(body)
        return
    print_analytics(body)


def register(root: typer.Typer) -> None:
    root.command("analytics")(analytics)
