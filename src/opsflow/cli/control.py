"""``opsflow approvals``, ``approve``, ``reject``, ``retry`` and ``skip``: people acting on runs."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from opsflow.cli.client import client_for
from opsflow.cli.ids import execution_id
from opsflow.cli.output import (
    OutputFormat,
    OutputOption,
    UsageError,
    age,
    cell,
    items_of,
    print_json,
    stdout,
    table,
)
from opsflow.status import ExecutionStatus
from opsflow.words import counted

approvals_app = typer.Typer(help="Approvals waiting for people, across all workflows.")

ExecutionArg = Annotated[
    str, typer.Argument(help="The execution's id, or its first 6+ characters.", show_default=False)
]
StepArg = Annotated[str, typer.Argument(help="The step's id.", show_default=False)]
NoteOption = Annotated[str | None, typer.Option("--note", "-n", help="Why; kept with the answer.")]
ItemOption = Annotated[
    int | None,
    typer.Option(
        "--item", min=0, help="Only this item (0-based) of a step with for_each or matrix."
    ),
]


@approvals_app.command("list")
def list_approvals(
    ctx: typer.Context,
    status: Annotated[str, typer.Option(help="pending, approved or rejected.")] = "pending",
    workflow: Annotated[str | None, typer.Option("--workflow", "-w")] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """List approvals (pending ones by default) and whether you may answer each."""
    body = client_for(ctx).get("/approvals", params={"status": status, "workflow": workflow})
    if output is OutputFormat.JSON:
        print_json(body)
        return
    table(
        [
            "EXECUTION",
            "WORKFLOW",
            "STEP",
            "STATUS",
            "MESSAGE",
            "APPROVERS",
            "ASKED",
            "TIMES OUT",
            "YOU",
        ],
        [
            [
                cell(a["execution_id"]),
                cell(a["workflow_id"]),
                cell(a["step"]),
                cell(a["status"]),
                cell(a["message"]),
                cell(", ".join(a["approvers"]) or "anyone"),
                age(a.get("opened_at")),
                age(a["timeout_at"]) if a["timeout_at"] else "never",
                cell("can answer" if a["can_respond"] else a.get("why_not")),
            ]
            for a in items_of(body)
        ],
        title=counted(int(body.get("total", 0)), f"{status} approval"),
    )


def _answer(
    ctx: typer.Context, execution: str, step: str, note: str | None, verb: str, output: OutputFormat
) -> None:
    client = client_for(ctx)
    execution = execution_id(client, execution)
    body = client.post(
        f"/executions/{execution}/steps/{step}/{verb}", json={"note": note, "via": "cli"}
    )
    if output is OutputFormat.JSON:
        print_json(body)
        return
    approval = body["approval"]
    if body["decided"]:
        stdout.print(
            Text(f"{step}: {approval['status']}; execution is {body['execution']['status']}")
        )
    else:
        got = len([r for r in approval["responses"] if r["decision"] == "approve"])
        stdout.print(f"{step}: your approval is recorded ({got} of {approval['min_approvals']})")


def approve(
    ctx: typer.Context,
    execution: ExecutionArg,
    step: StepArg,
    note: NoteOption = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Approve a waiting gate."""
    _answer(ctx, execution, step, note, "approve", output)


def reject(
    ctx: typer.Context,
    execution: ExecutionArg,
    step: StepArg,
    note: NoteOption = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Reject a waiting gate."""
    _answer(ctx, execution, step, note, "reject", output)


def retry(
    ctx: typer.Context,
    execution: ExecutionArg,
    step: StepArg,
    from_here: Annotated[
        bool,
        typer.Option(
            "--from-here",
            help="Also rerun every step after it, approvals included (allowed on a succeeded "
            "step, or an approved or rejected approval, which is asked again).",
        ),
    ] = False,
    item: ItemOption = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Run a failed step again (and, with --from-here, everything after it, approvals
    included; from here, a succeeded step too: re-plan after a failed apply). With --item,
    only that failed or cancelled item of a step with for_each or matrix."""
    if item is not None and from_here:
        raise UsageError("choose --item or --from-here, not both")
    client = client_for(ctx)
    execution = execution_id(client, execution)
    payload: dict[str, Any] = {"from_here": from_here}
    if item is not None:
        payload["item"] = item
    body = client.post(f"/executions/{execution}/steps/{step}/retry", json=payload)
    if output is OutputFormat.JSON:
        print_json(body)
        return
    reset: list[str] = body.get("reset") or []
    what = step if item is None else f"item {item} of {step}"
    text = f"retrying {what}" + (" from here" if from_here else "")
    if reset:
        text += f"; reset {', '.join(reset)}"
        kinds = {s["id"]: s["type"] for s in body.get("steps", [])}
        gates = [sid for sid in reset if kinds.get(sid) == "approval"]
        if gates:
            text += f" (approval {', '.join(gates)} will be asked again)"
    stdout.print(Text(f"{text}; execution is {_status_now(body)}"))


def _status_now(body: dict[str, Any]) -> str:
    """The execution's status after the change, with why when it ended at once (a skip that
    leaves another failure standing fails the run again in the same breath)."""
    status = str(body["status"])
    if ExecutionStatus(status).terminal and body.get("status_reason"):
        return f"{status} ({body['status_reason']})"
    return status


def skip(
    ctx: typer.Context,
    execution: ExecutionArg,
    step: StepArg,
    item: ItemOption = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Skip a failed step (where the workflow allows it); downstream goes on. With --item,
    only that failed or cancelled item, which then counts as succeeded."""
    client = client_for(ctx)
    execution = execution_id(client, execution)
    payload = {} if item is None else {"item": item}
    body = client.post(f"/executions/{execution}/steps/{step}/skip", json=payload)
    what = step if item is None else f"item {item} of {step}"
    if output is OutputFormat.JSON:
        print_json(body)
    else:
        stdout.print(Text(f"skipped {what}; execution is {_status_now(body)}"))


def register(root: typer.Typer) -> None:
    root.add_typer(approvals_app, name="approvals")
    root.command("approve")(approve)
    root.command("reject")(reject)
    root.command("retry")(retry)
    root.command("skip")(skip)
