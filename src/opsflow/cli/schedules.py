"""``opsflow schedules list``: every schedule, when it fires next, and how its last fire went."""

from __future__ import annotations

import typer

from opsflow.cli.client import client_for
from opsflow.cli.output import (
    OutputFormat,
    OutputOption,
    cell,
    items_of,
    print_json,
    say,
    stderr,
    table,
)

app = typer.Typer(help="See cron schedules and when they fire.", no_args_is_help=True)


def _last(schedule: dict[str, object]) -> str:
    last = schedule.get("last_fire")
    if not isinstance(last, dict):
        return "-"
    if last.get("error"):
        return f"{last.get('instant')}: not started ({last.get('error')})"
    return f"{last.get('instant')}: {last.get('status') or '-'} {last.get('execution_id') or ''}"


def _status(schedule: dict[str, object]) -> str:
    """Whether the schedule fires: ``broken`` (its cron line matches no date), ``disabled``
    (the trigger), ``workflow paused`` / ``workflow draft``, else ``active``."""
    if schedule.get("error"):
        return "broken"
    if not schedule.get("enabled"):
        return "disabled"
    workflow = schedule.get("workflow_status")
    if workflow != "active":
        return f"workflow {workflow}"
    return "active"


@app.command("list")
def list_schedules(
    ctx: typer.Context,
    output: OutputOption = OutputFormat.TEXT,
    preview: bool = typer.Option(False, "--preview", help="Also print the next five instants."),
) -> None:
    """List schedules: cron line, time zone, next and last fire, the last run's status."""
    body = client_for(ctx).get("/schedules")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    rows = items_of(body)
    table(
        ["WORKFLOW", "TRIGGER", "STATUS", "CRON", "TIME ZONE", "NEXT", "LAST"],
        [
            [
                cell(s.get("workflow_id")),
                cell(s.get("name")),
                _status(s),
                cell(s.get("cron")),
                cell(s.get("timezone")),
                cell(s.get("next_fire_at")),
                _last(s),
            ]
            for s in rows
        ],
    )
    for s in rows:
        if s.get("error"):
            stderr.print(f"{s.get('workflow_id')}/{s.get('name')}: {s.get('error')}", markup=False)
    if preview:
        for s in rows:
            say(f"{s.get('workflow_id')}/{s.get('name')}: " + ", ".join(s.get("preview") or []))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="schedules")
