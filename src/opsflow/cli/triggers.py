"""``opsflow triggers ...``: a workflow's triggers, their hook URLs and deliveries, and the
rotation of a generated secret (shown once)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from opsflow.cli.client import client_for
from opsflow.cli.output import (
    OutputFormat,
    OutputOption,
    age,
    cell,
    confirm,
    items_of,
    print_json,
    say,
    stderr,
    table,
)

app = typer.Typer(
    help="A workflow's triggers: hook URLs, deliveries, secrets; fire, enable, disable.",
    no_args_is_help=True,
)

WorkflowArgument = Annotated[str, typer.Argument(help="The workflow's id.", show_default=False)]
TriggerArgument = Annotated[
    str,
    typer.Argument(
        help="The trigger's name: its YAML key, else <type>-<n> (see `triggers list`).",
        show_default=False,
    ),
]


def _last(trigger: dict[str, Any]) -> str:
    deliveries = trigger.get("last_deliveries") or []
    if not deliveries:
        return "-"
    newest = deliveries[0]
    return f"{newest.get('outcome')} {age(newest.get('received_at'))}"


@app.command("list")
def list_triggers(
    ctx: typer.Context, workflow: WorkflowArgument, output: OutputOption = OutputFormat.TEXT
) -> None:
    """List a workflow's triggers: type, enabled, hook URL, secret, last delivery."""
    body = client_for(ctx).get(f"/workflows/{workflow}/triggers")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    table(
        ["NAME", "TYPE", "ENABLED", "URL", "SECRET", "LAST DELIVERY"],
        [
            [
                cell(t.get("name")),
                cell(t.get("type")),
                cell(t.get("enabled")),
                cell(t.get("url")),
                cell(t.get("secret")),
                _last(t),
            ]
            for t in items_of(body)
        ],
    )


@app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    workflow: WorkflowArgument,
    trigger: Annotated[
        str | None,
        typer.Argument(
            help="Only this trigger's (its name, see `triggers list`); all when left out.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 20,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Show what reached a workflow's triggers in the last 7 days and what came of it."""
    path = f"/workflows/{workflow}/deliveries"
    if trigger is not None:
        path = f"/workflows/{workflow}/triggers/{trigger}/deliveries"
    body = client_for(ctx).get(path, params={"limit": limit})
    if output is OutputFormat.JSON:
        print_json(body)
        return
    columns = ["RECEIVED", "FROM", "OUTCOME", "STATUS", "EXECUTION", "KEY", "REASON"]
    rows = [
        [
            age(d.get("received_at")),
            cell(d.get("source_address")),
            cell(d.get("outcome")),
            cell(d.get("status_code")),
            cell(d.get("execution_id")),
            cell(d.get("delivery_key")),
            cell(d.get("reason")),
        ]
        for d in items_of(body)
    ]
    if trigger is None:
        columns.insert(1, "TRIGGER")
        for row, d in zip(rows, items_of(body), strict=True):
            row.insert(1, cell(d.get("trigger_name")))
    table(columns, rows)


@app.command("rotate-secret")
def rotate_secret(
    ctx: typer.Context,
    workflow: WorkflowArgument,
    trigger: TriggerArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Replace a trigger's generated secret and print the new one, this once (admins)."""
    confirm(f"replace the secret of {workflow}/{trigger}? senders using the old one fail", yes=yes)
    body = client_for(ctx).post(f"/workflows/{workflow}/triggers/{trigger}/rotate-secret")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    stderr.print("The secret is shown this once; store it with the sender now.", markup=False)
    say(str(body.get("secret")))
    stderr.print(f"URL: {body.get('url')}", markup=False)
    stderr.print(f"How: {body.get('how')}", markup=False)


@app.command("fire")
def fire(
    ctx: typer.Context,
    workflow: WorkflowArgument,
    trigger: TriggerArgument,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Fire a schedule now, by hand, with its params (allowed while the workflow is paused,
    like `opsflow run`); prints the run's id."""
    body = client_for(ctx).post(f"/workflows/{workflow}/triggers/{trigger}/fire")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    say(str(body.get("execution_id")))
    stderr.print(f"URL: {body.get('url')}", markup=False)


def _switch(ctx: typer.Context, workflow: str, trigger: str, action: str, output: Any) -> None:
    body = client_for(ctx).post(f"/workflows/{workflow}/triggers/{trigger}/{action}")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    say(f"{workflow}/{trigger}: {'enabled' if body.get('enabled') else 'disabled'}")


@app.command("enable")
def enable(
    ctx: typer.Context,
    workflow: WorkflowArgument,
    trigger: TriggerArgument,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Let a trigger start runs again (a schedule fires from its next instant on)."""
    _switch(ctx, workflow, trigger, "enable", output)


@app.command("disable")
def disable(
    ctx: typer.Context,
    workflow: WorkflowArgument,
    trigger: TriggerArgument,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Stop one trigger starting runs; it keeps its URL key, secret and state, and stays
    disabled across new versions."""
    _switch(ctx, workflow, trigger, "disable", output)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="triggers")
