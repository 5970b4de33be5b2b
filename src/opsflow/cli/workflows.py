"""``opsflow workflows ...``: list, inspect and manage workflows on the server."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from opsflow.cli.client import client_for, delete_confirmed
from opsflow.cli.output import (
    OutputFormat,
    OutputOption,
    UsageError,
    YesOption,
    age,
    cell,
    items_of,
    print_json,
    say,
    table,
)
from opsflow.status import WorkflowStatus

app = typer.Typer(
    help="List, inspect, pause, duplicate and delete workflows.", no_args_is_help=True
)

WorkflowId = Annotated[str, typer.Argument(help="The workflow's id.", show_default=False)]


def _label_filters(labels: list[str]) -> list[str]:
    for label in labels:
        key, sep, _ = label.partition("=")
        if not sep or not key:
            raise UsageError(
                f"--label {label!r} is not of the form key=value", hint="e.g. --label team=payments"
            )
    return labels


@app.command("list")
def list_workflows(
    ctx: typer.Context,
    status: Annotated[
        WorkflowStatus | None, typer.Option(help="Only workflows in this status.")
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", help="Only workflows with this label (k=v). Repeatable."),
    ] = None,
    search: Annotated[
        str | None,
        typer.Option("--search", "-s", help="Text to look for in id, name or description."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Rows per page.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Rows to skip.")] = 0,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """List workflows, newest change first."""
    body = client_for(ctx).get(
        "/workflows",
        params={
            "status": status.value if status else None,
            "label": _label_filters(label or []),
            "q": search,
            "limit": limit,
            "offset": offset,
        },
    )
    if output is OutputFormat.JSON:
        print_json(body)
        return
    rows = items_of(body)
    table(
        ["ID", "NAME", "STATUS", "VERSION", "LABELS", "UPDATED"],
        [
            [
                cell(w.get("id")),
                cell(w.get("name")),
                cell(w.get("status")),
                cell(w.get("latest_version")),
                cell(w.get("labels")),
                age(w.get("updated_at")),
            ]
            for w in rows
        ],
    )
    total = body.get("total") if isinstance(body, dict) else None
    if isinstance(total, int) and total > offset + len(rows):
        say(
            f"showing {offset + 1}-{offset + len(rows)} of {total}; next page: --offset "
            f"{offset + len(rows)}"
        )


@app.command()
def show(
    ctx: typer.Context,
    workflow_id: WorkflowId,
    version: Annotated[
        int | None, typer.Option("--version", "-v", min=1, help="A published version.")
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Show a workflow (its current draft and status), or one of its published versions."""
    client = client_for(ctx)
    path = f"/workflows/{workflow_id}"
    body = client.get(f"{path}/versions/{version}" if version else path)
    if output is OutputFormat.JSON:
        print_json(body)
        return
    _print_workflow(body)


def _print_workflow(body: dict[str, Any]) -> None:
    keys = [
        ("id", "id"),
        ("workflow", "workflow_id"),
        ("name", "name"),
        ("status", "status"),
        ("version", "number"),
        ("latest version", "latest_version"),
        ("unpublished", "has_unpublished_changes"),
        ("labels", "labels"),
        ("description", "description"),
        ("created", "created_at"),
        ("created by", "created_by"),
        ("updated", "updated_at"),
    ]
    for title, key in keys:
        if key in body and body[key] not in (None, "", {}):
            value = age(body[key]) if key.endswith("_at") else cell(body[key])
            say(f"{title + ':':<16}{value}")
    definition = body.get("definition") or body.get("draft_definition")
    steps = definition.get("steps") if isinstance(definition, dict) else None
    if isinstance(steps, list) and steps:
        say("steps:")
        for step in steps:
            needs = step.get("needs") or []
            after = f"  <- {', '.join(map(str, needs))}" if needs else ""
            say(f"  {step.get('id')} ({step.get('type')}){after}")
    files = body.get("files")
    if isinstance(files, list) and files:
        say("files:")
        for entry in files:
            say(f"  {entry.get('path')} ({entry.get('size')} bytes, mode {entry.get('mode')})")


@app.command()
def versions(
    ctx: typer.Context, workflow_id: WorkflowId, output: OutputOption = OutputFormat.TEXT
) -> None:
    """List a workflow's published versions."""
    body = client_for(ctx).get(f"/workflows/{workflow_id}/versions")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    table(
        ["VERSION", "CREATED", "BY", "DIGEST"],
        [
            [
                cell(v.get("number")),
                age(v.get("created_at")),
                cell(v.get("created_by")),
                cell(str(v.get("content_digest") or "")[:12]),
            ]
            for v in items_of(body)
        ],
    )


_PAST = {"pause": "paused", "resume": "resumed"}


def _action(ctx: typer.Context, workflow_id: str, action: str, output: OutputFormat) -> None:
    body = client_for(ctx).post(f"/workflows/{workflow_id}/{action}")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    if action == "publish":  # PublishResult: {version, created}
        what = "published version" if body.get("created") else "unchanged, version"
        say(f"{workflow_id}: {what} {body.get('version')}")
        return
    say(f"{workflow_id}: {_PAST[action]}")


@app.command()
def publish(
    ctx: typer.Context, workflow_id: WorkflowId, output: OutputOption = OutputFormat.TEXT
) -> None:
    """Publish the workflow's draft as a new version (no-op if it equals the latest)."""
    _action(ctx, workflow_id, "publish", output)


@app.command()
def pause(
    ctx: typer.Context, workflow_id: WorkflowId, output: OutputOption = OutputFormat.TEXT
) -> None:
    """Stop triggers from starting new runs of the workflow."""
    _action(ctx, workflow_id, "pause", output)


@app.command()
def resume(
    ctx: typer.Context, workflow_id: WorkflowId, output: OutputOption = OutputFormat.TEXT
) -> None:
    """Let triggers start runs of the workflow again."""
    _action(ctx, workflow_id, "resume", output)


@app.command()
def duplicate(
    ctx: typer.Context,
    workflow_id: WorkflowId,
    new_id: Annotated[str, typer.Argument(help="The copy's id.", show_default=False)],
    name: Annotated[str | None, typer.Option(help="The copy's name.")] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Copy a workflow under a new id; the copy starts as a draft."""
    body = client_for(ctx).post(
        f"/workflows/{workflow_id}/duplicate", json={"new_id": new_id, "name": name}
    )
    if output is OutputFormat.JSON:
        print_json(body)
        return
    say(f"{workflow_id}: duplicated as {new_id} (draft)")


@app.command()
def delete(
    ctx: typer.Context,
    workflow_id: WorkflowId,
    yes: YesOption = False,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Delete a workflow; its runs and versions stay readable in history."""
    delete_confirmed(
        ctx,
        f"/workflows/{workflow_id}",
        workflow_id,
        f"delete workflow {workflow_id}?",
        yes=yes,
        output=output,
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="workflows")
