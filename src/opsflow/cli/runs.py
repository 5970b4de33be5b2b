"""``opsflow run``, ``executions``, ``logs`` and ``cancel``: start runs and watch them."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.text import Text

from opsflow.cli.client import ApiClient, client_for
from opsflow.cli.events import IDLE, follow
from opsflow.cli.ids import execution_id as resolve_id
from opsflow.cli.output import (
    CliError,
    OutputFormat,
    OutputOption,
    UsageError,
    age,
    cell,
    clock,
    items_of,
    print_json,
    say,
    short,
    stdout,
    table,
)
from opsflow.status import ExecutionStatus, JobStatus, StepStatus
from opsflow.words import counted, did_you_mean

executions_app = typer.Typer(help="List and inspect executions.", no_args_is_help=True)

STATUS_STYLE = {
    "completed": "green",
    "succeeded": "green",
    "approved": "green",
    "failed": "red",
    "error": "red",
    "rejected": "red",
    "timeout": "red",
    "cancelled": "yellow",
    "skipped": "dim",
    "paused": "yellow",
    "waiting": "yellow",
    "running": "cyan",
    "pending": "dim",
    "dispatched": "dim",
}


# How a log line looks when followed: stderr red; opsflow's own lines dim, by their level
# (yellow for warn, bold red for the error that failed the step).
_LOG_STYLE: dict[tuple[object, object], str] = {
    ("stderr", None): "red",
    ("system", None): "dim",
    ("system", "info"): "dim",
    ("system", "warn"): "yellow",
    ("system", "error"): "bold red",
}


def _styled(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def _parse_params(values: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(
                f"-p {item!r} is not of the form key=value", hint="e.g. -p environment=staging"
            )
        params[key] = value
    return params


AGENT_WAIT = "agent:"  # marks, in what `_reason_news` showed, a step waiting for an agent


def agent_wait(step: dict[str, Any]) -> str | None:
    """The pending reason of a step that runs but whose only active job still waits for an
    agent (no online agent in its pool, or no free slot); None when an agent has it or nothing
    holds it up. ``step`` is a ``steps[]`` item of ``GET /executions/{id}``."""
    reason = step.get("pending_reason")
    if step.get("status") != StepStatus.RUNNING or not reason:
        return None
    active = [j for j in step.get("jobs") or [] if not JobStatus(j["status"]).terminal]
    if active and all(j["status"] == JobStatus.PENDING for j in active):
        return str(reason)
    return None


def _step_line(step_id: str, status: str, reason: str | None) -> Text:
    """``  <step> <status>``, or ``  <step> waiting for an agent: <reason>`` instead of
    ``running`` while its job waits for an agent."""
    if reason is not None:
        return Text(f"  {step_id} ").append(f"waiting for an agent: {reason}", style="yellow")
    return Text(f"  {step_id} ").append_text(_styled(status))


def _reason_news(
    client: ApiClient, execution_id: str, shown: dict[str, str], only: str | None = None
) -> None:
    """Print the pending reason of each started step (running or waiting: not the ones that
    only wait for their needs) that is new since the last look; a step waiting for an agent
    as ``<step> waiting for an agent: <reason>``. With ``only``, a step event of that step
    whose status is running is printed here too (as waiting for an agent, when it is)."""
    detail = client.get(f"/executions/{execution_id}")
    for step in detail.get("steps", []):
        reason = step.get("pending_reason")
        waiting = agent_wait(step)
        was_waiting = shown.get(step["id"], "").startswith(AGENT_WAIT)
        if step["id"] == only or (was_waiting and waiting is None):
            # Its step event, or an agent took the job it waited with: say how it is now.
            if step["id"] == only or step.get("status") == StepStatus.RUNNING:
                stdout.print(_step_line(step["id"], StepStatus.RUNNING, waiting))
            shown.pop(step["id"], None)
            if waiting is not None:
                shown[step["id"]] = AGENT_WAIT + waiting
                continue
        if waiting is not None and shown.get(step["id"]) != AGENT_WAIT + waiting:
            shown[step["id"]] = AGENT_WAIT + waiting
            stdout.print(_step_line(step["id"], StepStatus.RUNNING, waiting))
            continue
        started = step.get("status") in (StepStatus.RUNNING, StepStatus.WAITING)
        if reason and started and waiting is None and shown.get(step["id"]) != reason:
            shown[step["id"]] = reason
            stdout.print(Text(f"  {step['id']} ").append(reason, style="yellow"))


def _watch(
    ctx: typer.Context, client: ApiClient, execution_id: str, *, step: str | None, show: bool
) -> str:
    """Print step progress, why a step waits, and log lines as they happen (nothing when
    ``show`` is off: JSON output); returns the final status."""
    connection = ctx.find_root().obj
    status = "running"
    shown: dict[str, str] = {}
    jobs = _JobsOf(client, execution_id)  # names a retried step's attempts, as `logs` does
    # Steps whose wait for a retry was printed (its reason says how the attempt ended).
    retry_waits: set[str] = set()
    for event in follow(connection, execution_id):
        d = event.data
        if not show:
            continue
        if event.kind == "execution":
            status = d.get("status", status)
            line = Text("execution ").append_text(_styled(status))
            if d.get("reason"):
                line.append(f": {d['reason']}", style="dim")
            stdout.print(line)
        elif event.kind == "step":
            if d.get("status") == StepStatus.RUNNING and not d.get("reason"):
                # Running, or only queued for an agent: the step's jobs tell (printed there).
                _reason_news(client, execution_id, shown, only=str(d.get("step")))
                continue
            line = Text(f"  {d.get('step')} ").append_text(_styled(d.get("status", "")))
            if d.get("reason"):
                line.append(f"  {d['reason']}", style="dim")
            stdout.print(line)
            if d.get("status") == StepStatus.WAITING:
                retry_waits.add(str(d.get("step")))
                _reason_news(client, execution_id, shown)
        elif event.kind == "job" and d.get("status") == JobStatus.PENDING:
            said = _retry_line(jobs, d)
            if said is not None and d.get("step") not in retry_waits:
                stdout.print(Text(f"    [{said[0]}] ", style="dim").append(said[1], style="yellow"))
            retry_waits.discard(str(d.get("step")))
        elif event.kind == IDLE:
            _reason_news(client, execution_id, shown)
        elif event.kind == "log" and (step is None or d.get("step") == step):
            style = _LOG_STYLE.get((d.get("stream"), d.get("level")), "")
            where = jobs.where(d, live=True)
            stdout.print(
                Text(f"    [{where}] ", style="dim").append(d.get("text", ""), style=style)
            )
    detail = client.get(f"/executions/{execution_id}")
    return str(detail.get("status", status))


_ENDED = {
    JobStatus.FAILED: "failed",
    JobStatus.TIMEOUT: "timed out",
    JobStatus.CANCELLED: "was cancelled",
}


def _retry_line(jobs: _JobsOf, queued: dict[str, Any]) -> tuple[str, str] | None:
    """For a ``job`` event that queues a retry (the attempt after one that ended unsuccessfully),
    the place and text of the line that says so: ``("slow", "attempt 1 failed: agent lost: its
    lease expired without a report; retrying (attempt 2)")``; None for a first attempt or a
    cleanup job. An attempt that ends says nothing on the stream when its agent is lost (only
    its retry is queued): how it ended is read from the execution's detail."""
    if queued.get("purpose", "run") != "run":
        return None
    if queued.get("item") is None and queued.get("attempt") == 1:
        return None  # a plain step's first attempt: nothing to read (an item's may retry)
    job = jobs.job(queued)
    before = jobs.before(queued)
    if job is None or before is None or job.get("purpose", "run") != "run":
        return None
    ended = _ENDED.get(JobStatus(before["status"]))
    if ended is None:
        return None
    number = before.get("item_attempt") or before["attempt"]
    text = f"attempt {number} {ended}"
    if before.get("error"):
        text += f": {before['error']}"
    text += f"; retrying (attempt {job.get('item_attempt') or job['attempt']})"
    return _where(job), text


def run(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument(help="The workflow's id.", show_default=False)],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="A param value k=v. Repeatable.")
    ] = None,
    follow_run: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Show live progress and logs; exit code follows the outcome."
        ),
    ] = False,
    test: Annotated[bool, typer.Option("--test", help="Run the draft as a test run.")] = False,
    version: Annotated[int | None, typer.Option(help="Run this published version.")] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Start a run of a workflow."""
    client = client_for(ctx)
    body = client.post(
        f"/workflows/{workflow}/runs",
        json={
            "params": _parse_params(param or []),
            "params_as_text": True,
            "test": test,
            "version": version,
        },
    )
    execution_id = body["id"]
    if body.get("status") == ExecutionStatus.CANCELLED.value:
        # Ended before it began: the concurrency policy skip cancels a run at once.
        if output is OutputFormat.JSON:
            print_json(body)
        else:
            why = body.get("status_reason") or "cancelled before it started"
            stdout.print(
                Text(f"execution {execution_id} of {workflow} was not started: ").append(why)
            )
        sys.exit(1 if follow_run else 0)
    if not follow_run:
        if output is OutputFormat.JSON:
            print_json(body)
        else:
            stdout.print(f"started execution {execution_id} of {workflow}")
        return
    if output is OutputFormat.TEXT:
        stdout.print(f"started execution {execution_id} of {workflow}")
    final = _watch(ctx, client, execution_id, step=None, show=output is OutputFormat.TEXT)
    if output is OutputFormat.JSON:
        print_json(client.get(f"/executions/{execution_id}"))
    sys.exit(0 if final == ExecutionStatus.COMPLETED.value else 1)


@executions_app.command("list")
def list_executions(
    ctx: typer.Context,
    workflow: Annotated[
        str | None, typer.Option("--workflow", "-w", help="Only this workflow.")
    ] = None,
    status: Annotated[
        list[ExecutionStatus] | None, typer.Option(help="Only these statuses. Repeatable.")
    ] = None,
    trigger: Annotated[str | None, typer.Option(help="Only this trigger type.")] = None,
    started_by: Annotated[str | None, typer.Option(help="Only runs started by this user.")] = None,
    since: Annotated[str | None, typer.Option(help="Created at or after (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Created before (ISO 8601).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """List executions, newest first."""
    body = client_for(ctx).get(
        "/executions",
        params={
            "workflow": workflow,
            "status": [s.value for s in status or []],
            "trigger": trigger,
            "started_by": started_by,
            "since": since,
            "until": until,
            "limit": limit,
            "offset": offset,
        },
    )
    if output is OutputFormat.JSON:
        print_json(body)
        return
    table(
        ["ID", "WORKFLOW", "VERSION", "STATUS", "TRIGGER", "BY", "CREATED", "DURATION"],
        [
            [
                cell(e["id"]),
                cell(e["workflow_id"]),
                cell(e["version"]),
                cell(e["status"]),
                cell(e["trigger_type"]),
                cell(e["started_by"]),
                age(e["created_at"]),
                cell(
                    f"{e['duration_ms'] / 1000:.2f}s" if e.get("duration_ms") is not None else None
                ),
            ]
            for e in items_of(body)
        ],
        title=counted(int(body.get("total", 0)), "execution"),
    )


ExecutionArg = Annotated[
    str,
    typer.Argument(help="The execution's id, or its first 6+ characters.", show_default=False),
]


def _seconds(ms: float | None) -> str | None:
    return f"{ms / 1000:.2f}s" if ms is not None else None


SHOWN_WIDTH = 120


def _value(value: Any) -> tuple[str, bool]:
    """A value on one line in JSON spelling, and whether it had to be cut to get there."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    first, _, rest = text.partition("\n")
    if isinstance(value, list) and len(text) > SHOWN_WIDTH:
        return f"[{counted(len(value), 'item')}]", True
    if isinstance(value, dict) and len(text) > SHOWN_WIDTH:
        return "{" + counted(len(value), "key") + "}", True
    if rest or len(first) > SHOWN_WIDTH:
        lines = counted(text.count("\n") + 1, "line")
        return f"{first[: SHOWN_WIDTH - 3]}... ({lines}, {len(text)} characters)", True
    return first, False


def step_outputs(step: dict[str, Any]) -> tuple[str | None, bool]:
    """A step's outputs in one line (plan changes, who answered a gate and why, or key=value),
    and whether any value was cut short (``executions show --step`` prints it whole).

    A Terraform plan's text is summarised by its changes, never printed inline: a plan runs to
    hundreds of lines and would bury the rest of the execution.
    """
    out: dict[str, Any] = step.get("outputs") or {}
    if not out:
        return None, False
    parts: list[str] = []
    cut = False
    changes = out.get("changes")
    if isinstance(changes, dict):
        parts.append(
            f"changes +{changes.get('add', 0)} ~{changes.get('change', 0)} "
            f"-{changes.get('destroy', 0)}"
        )
    plan = out.get("plan_text")
    if isinstance(plan, str):
        lines = counted(plan.count("\n") + (0 if plan.endswith("\n") else 1), "line")
        parts.append(f"plan_text of {lines}")
        cut = True
    if out.get("responded_by"):
        answer = "approved" if out.get("approved") else "rejected"
        via = f" via {out['responded_via']}" if out.get("responded_via") else ""
        note = f': "{out["response_note"]}"' if out.get("response_note") else ""
        parts.append(f"{answer} by {out['responded_by']}{via}{note}")
    shown = {"changes", "plan_text", "approved", "responded_by", "responded_via"}
    shown |= {"response_note", "responded_at", "exit_code"}
    for key, value in out.items():
        if key in shown or value in ({}, []):
            continue
        text, was_cut = _value(value)
        parts.append(f"{key}={text}")
        cut = cut or was_cut
    return "; ".join(parts) or None, cut


def print_step_outputs(step: dict[str, Any]) -> None:
    """Every output of one step in full: short values as ``key: value``, multi-line text (a
    Terraform plan) as a block of its own lines, structures as indented JSON."""
    out: dict[str, Any] = step.get("outputs") or {}
    if not out:
        say(f"step {step['id']} has no outputs")
        return
    for key, value in out.items():
        if isinstance(value, str) and "\n" not in value:
            say(f"{key}: {value}")
        elif isinstance(value, str):
            say(f"{key}:")
            sys.stdout.write(value if value.endswith("\n") else value + "\n")
        else:
            text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
            say(f"{key}: {text}")
    sys.stdout.flush()


def _attempt_label(job: dict[str, Any]) -> str:
    """``  attempt 2``; for a fanned-out step's job ``  item 3 attempt 2``, the item's own
    attempt (a job's ``attempt`` counts every job of the step, all items together)."""
    if job.get("purpose", "run") != "run":
        return f"  {job['purpose']}"
    if job.get("item") is not None:
        return f"  item {job['item']} attempt {job.get('item_attempt') or job.get('attempt')}"
    return f"  attempt {job.get('attempt')}"


def _by_item(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A step's jobs with a fanned-out step's grouped by item (each item's attempts in
    order), then the jobs of no item (cleanup) in their order."""
    return sorted(jobs, key=lambda j: (j.get("item") is None, j.get("item") or 0))


def fan_out_summary(step: dict[str, Any]) -> str | None:
    """A fanned-out step's items in a few words: ``200 items: 190 succeeded, 10 running``."""
    fan = step.get("fan_out")
    if not fan or fan.get("total") is None:
        return None
    counts = fan.get("counts") or {}
    parts = [f"{n} {status}" for status, n in counts.items() if n]
    return f"{counted(fan['total'], 'item')}: {', '.join(parts) or 'none'}"


@executions_app.command("show")
def show_execution(
    ctx: typer.Context,
    execution_id: ExecutionArg,
    step: Annotated[
        str | None,
        typer.Option(
            "--step",
            "-s",
            help="Print this step's outputs in full (a Terraform plan's whole text), nothing else.",
        ),
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Show an execution: its steps with why they wait, every job (attempts and cleanup) with
    its own status, each step's outputs in a line (long ones cut short), and the engine log;
    with --step, one step's outputs in full."""
    client = client_for(ctx)
    body = client.get(f"/executions/{resolve_id(client, execution_id)}")
    if step is not None:
        found = [s for s in body["steps"] if s["id"] == step]
        if not found:
            ids = [str(s["id"]) for s in body["steps"]]
            raise UsageError(
                f"execution {body['id']} has no step {step!r}{did_you_mean(step, ids)}",
                hint=f"its steps: {', '.join(ids)}",
            )
        if output is OutputFormat.JSON:
            print_json(found[0].get("outputs") or {})
        else:
            print_step_outputs(found[0])
        return
    if output is OutputFormat.JSON:
        print_json(body)
        return
    print_detail(body)


def trigger_line(body: dict[str, Any]) -> str:
    """How an execution started, in one line: ``webhook deploy-hook: delivery d-1 (from
    10.0.0.5)``, ``schedule schedule-1 at 2026-…``, ``workflow workflow-1 after execution
    <id>``, ``manual by ada``; whom a trigger acted for when that was a person."""
    record = body.get("trigger") or {}
    kind, name = record.get("type") or body.get("trigger_type"), record.get("name")
    source, actor = record.get("source"), record.get("actor")
    if not kind:
        return ""
    if kind == "manual":
        return f"manual by {actor}" if actor else "manual"
    match kind:
        case "schedule":
            text = f"schedule {source or name}"
        case "workflow":
            text = f"workflow {name} after execution {source}"
        case _:
            text = f"{kind} {name}"
            if source and source != name:
                text += f": {source}"
            address = (body.get("trigger_data") or {}).get("address")
            if address:
                text += f" (from {address})"
    if actor and actor != f"{kind}:{name}":
        text += f", acting for {actor}"
    return text


def print_detail(body: dict[str, Any]) -> None:
    """An execution detail (the API's JSON) for people: a row per step, then a row per job
    (with the agent that claimed it; ``-`` for a job no agent has claimed)."""
    stdout.print(
        Text(
            f"{body['id']}  {body['workflow_id']} "
            + (f"v{body['version']}  " if body.get("version") is not None else "(test run)  ")
        ).append_text(_styled(body["status"]))
    )
    if body.get("status_reason"):
        stdout.print(f"  {body['status_reason']}")
    started = trigger_line(body)
    if started:
        stdout.print(Text("trigger: ", style="dim").append(started), markup=False)
    rows: list[list[str]] = []
    whole: list[tuple[str, str]] = []  # the errors the table cuts short, to print in full
    for s in body["steps"]:
        said = cell(s.get("pending_reason") or s.get("error") or fan_out_summary(s))
        rows.append([cell(s["id"]), cell(s["status"]), cell(None), cell(None), cell(None), said])
        if short(said) != said:
            whole.append((s["id"], said))
        for j in _by_item(s["jobs"] or []):
            error = cell(j.get("error"))
            rows.append(
                [
                    _attempt_label(j),
                    cell(j["status"]),
                    cell(j.get("agent_id")),
                    cell(_seconds(j.get("duration_ms"))),
                    cell(j.get("exit_code")),
                    error,
                ]
            )
            if short(error) != error:
                whole.append((f"{s['id']} {_attempt_label(j).strip()}", error))
    table(["STEP / JOB", "STATUS", "AGENT", "DURATION", "EXIT", "WAITING FOR / ERROR"], rows)
    if whole:
        stdout.print("in full:")
        for where, said in whole:
            stdout.print(Text(f"  {where}: ", style="dim").append(said))
    outputs = [(s["id"], *step_outputs(s)) for s in body["steps"]]
    if any(text for _, text, _ in outputs):
        stdout.print("outputs:")
        for step_id, text, cut in outputs:
            if text:
                stdout.print(Text(f"  {step_id}: ", style="dim").append(text))
            if cut:
                stdout.print(
                    Text(
                        f"    (cut short; in full: opsflow executions show {body['id']} "
                        f"--step {step_id})",
                        style="dim",
                    )
                )
    if body.get("outputs"):
        stdout.print("workflow outputs:")
        for name, value in body["outputs"].items():
            shown = value if isinstance(value, str) else json.dumps(value)
            stdout.print(Text(f"  {name} = ", style="dim").append(shown))
    parent = body.get("parent")
    if parent:
        stdout.print(
            Text("started by step ", style="dim").append(
                f"{parent['step']} of execution {parent['execution_id']}"
            )
        )
    if body.get("engine_log"):
        stdout.print("engine log:")
        for e in body["engine_log"]:
            stdout.print(Text(f"  {clock(e['at'])}  ", style="dim").append(e["message"]))


def logs(
    ctx: typer.Context,
    execution_id: ExecutionArg,
    follow_logs: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep streaming until the run ends.")
    ] = False,
    step: Annotated[str | None, typer.Option(help="Only this step's lines.")] = None,
    stream: Annotated[str | None, typer.Option(help="stdout, stderr or system.")] = None,
    item: Annotated[
        int | None,
        typer.Option(min=0, help="Only this item's lines (a step with for_each or matrix)."),
    ] = None,
    attempt: Annotated[
        int | None,
        typer.Option(
            min=1, help="Only this attempt's lines (of each item, for a fanned-out step)."
        ),
    ] = None,
) -> None:
    """Print an execution's log lines; with -f, go on with the lines that follow them.

    Each line is prefixed with its step (``[build]``, ``[build#3]`` for item 3), and with its
    attempt when the step (item) ran more than once: ``[build attempt 2]``."""
    client = client_for(ctx)
    execution_id = resolve_id(client, execution_id)
    # The status first: once it reads ended, every line of the run is committed, so the
    # backlog below is all of it; read after the backlog, lines could end the run unseen.
    detail = client.get(f"/executions/{execution_id}")
    ended = not follow_logs or ExecutionStatus(detail["status"]).terminal
    jobs = _JobsOf(client, execution_id, detail)
    if attempt is not None and ExecutionStatus(detail["status"]).terminal:
        numbers = jobs.attempts(step)
        if attempt not in numbers:
            where = f"step {step!r}" if step is not None else f"execution {execution_id}"
            # Not found, as an unknown execution or item is (1), not a wrong call (2).
            raise CliError(
                f"{where} has no attempt {attempt}; its attempts: "
                + (", ".join(str(n) for n in sorted(numbers)) or "none")
            )

    def show(line: dict[str, Any], *, live: bool = False) -> None:
        if attempt is not None and jobs.number(line) != attempt:
            return
        where = jobs.where(line, live=live)
        stdout.print(Text(f"[{where}] ", style="dim").append(line["text"]), markup=False)

    after = 0
    while True:
        page = client.get(
            f"/executions/{execution_id}/logs",
            params={
                "step": step,
                "stream": stream,
                "item": item,
                "after": after,
                "limit": 5000,
            },
        )
        for line in page["items"]:
            show(line)
        after = page["next_after"]
        if len(page["items"]) < 5000:
            break
    if ended:
        return
    connection = ctx.find_root().obj
    # The stream starts after the last line printed above: nothing is shown twice.
    for event in follow(connection, execution_id, after_line=after):
        d = event.data
        if (
            event.kind == "log"
            and (step is None or d.get("step") == step)
            and (stream is None or d.get("stream") == stream)
            and (item is None or d.get("item") == item)
        ):
            show(d, live=True)


def _where(line: dict[str, Any]) -> str:
    """A log line's place: its step, and ``#N`` for item N of a fanned-out step."""
    return line["step"] if line.get("item") is None else f"{line['step']}#{line['item']}"


class _JobsOf:
    """An execution's jobs by id (from its detail), to name the attempt a log line (which
    carries its ``job_id``) comes from; read again when a line names a job not seen yet.

    Both ``logs`` and ``run --follow`` prefix their lines with `where`."""

    def __init__(
        self, client: ApiClient, execution_id: str, detail: dict[str, Any] | None = None
    ) -> None:
        """``detail``: the execution's, as read; None reads it at the first line with a job."""
        self._client, self._execution_id = client, execution_id
        self._asked: set[str] = set()
        self._jobs: dict[str, dict[str, Any]] = {}
        self._runs: dict[tuple[str, int | None], int] = {}  # (step, item) -> its jobs
        if detail is not None:
            self._load(detail)

    def _load(self, detail: dict[str, Any]) -> None:
        self._jobs, self._runs = {}, {}
        for s in detail["steps"]:
            for j in s["jobs"] or []:  # oldest first
                key = (s["id"], j.get("item"))
                self._runs[key] = self._runs.get(key, 0) + 1
                # "nth": the job's place among its step's (item's), 1 for the first.
                self._jobs[j["id"]] = {**j, "step": s["id"], "nth": self._runs[key]}

    def before(self, line: dict[str, Any]) -> dict[str, Any] | None:
        """The job before the line's (event's) one of its step (item): the attempt it
        follows; None for a first job or a job not known."""
        job = self.job(line)
        if job is None or job["nth"] < 2:
            return None
        key = (job["step"], job.get("item"))
        for other in self._jobs.values():
            if (other["step"], other.get("item")) == key and other["nth"] == job["nth"] - 1:
                return other
        return None

    def job(self, line: dict[str, Any]) -> dict[str, Any] | None:
        """The line's (event's) job, by its ``job_id``, with its ``step`` and ``nth`` (its
        place among its step's or item's jobs, 1 for the first); None without a job id or
        for a job the execution does not have."""
        job_id = line.get("job_id")
        if not job_id:
            return None
        if job_id not in self._jobs and job_id not in self._asked:
            self._asked.add(job_id)  # a job of a retry started since: read the detail again
            self._load(self._client.get(f"/executions/{self._execution_id}"))
        return self._jobs.get(job_id)

    def number(self, line: dict[str, Any]) -> int | None:
        """The attempt of the line's job (an item's own attempt on a fanned-out step); None
        for a cleanup job's line or a job not known."""
        job = self.job(line)
        if job is None or job.get("purpose", "run") != "run":
            return None
        return int(job.get("item_attempt") or job["attempt"])

    def attempts(self, step: str | None) -> set[int]:
        """The attempt numbers of ``step``'s jobs (of every step's, for None)."""
        return {
            int(j.get("item_attempt") or j["attempt"])
            for j in self._jobs.values()
            if (step is None or j["step"] == step) and j.get("purpose", "run") == "run"
        }

    def where(self, line: dict[str, Any], *, live: bool = False) -> str:
        """``_where``, then the attempt when the step (item) has more than one job, as
        ``executions show`` names its jobs: ``build attempt 2``, ``build#3 attempt 2``,
        ``build cleanup``.

        A ``live`` line (streamed as it is written) cannot know whether a retry will follow
        its job, and when it is read the next attempt may or may not have begun: it counts
        only the jobs up to its own. So a first attempt's live lines say ``[build]`` and a
        retry's ``[build attempt 2]``, whatever the timing; a single-attempt step keeps
        ``[build]`` either way."""
        place = _where(line)
        job = self.job(line)
        if job is None:
            return place
        if (job["nth"] if live else self._runs[(job["step"], job.get("item"))]) < 2:
            return place
        if job.get("purpose", "run") != "run":
            return f"{place} {job['purpose']}"
        return f"{place} attempt {job.get('item_attempt') or job['attempt']}"


def cancel(
    ctx: typer.Context,
    execution_id: ExecutionArg,
    force: Annotated[
        bool, typer.Option(help="Terminate in-flight jobs (SIGTERM, then SIGKILL).")
    ] = False,
    cleanup: Annotated[
        bool,
        typer.Option(
            help="Run each step's cleanup action after cancelling; on an execution that has "
            "ended, undo what it applied (terraform destroy, newest first)."
        ),
    ] = False,
    step: Annotated[
        str | None,
        typer.Option(
            help="Cancel only this running step's items (a step with for_each or matrix)."
        ),
    ] = None,
    item: Annotated[
        int | None, typer.Option(min=0, help="With --step: only this item (0-based).")
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Cancel an execution; with --cleanup, also (or, once it ended, only) undo what it
    applied. With --step (and --item), cancel only the items of a fanned-out step."""
    if force and cleanup:
        raise UsageError("choose --force or --cleanup, not both")
    if item is not None and step is None:
        raise UsageError("--item needs --step: the step whose item to cancel")
    mode = "force" if force else ("cleanup" if cleanup else "graceful")
    client = client_for(ctx)
    execution_id = resolve_id(client, execution_id)
    if step is not None:
        if force or cleanup:
            raise UsageError("--step cancels items; --force and --cleanup apply to executions")
        payload = {} if item is None else {"item": item}
        body = client.post(f"/executions/{execution_id}/steps/{step}/cancel", json=payload)
        if output is OutputFormat.JSON:
            print_json(body)
        else:
            what = f"the items of {step}" if item is None else f"item {item} of {step}"
            stdout.print(
                Text(f"cancelled {what}; execution is ").append_text(_styled(body["status"]))
            )
        return
    asked_before = None
    if cleanup:  # a second request changes nothing: say what the first one did
        before = client.get(f"/executions/{execution_id}")
        if ExecutionStatus(before["status"]).terminal and (before.get("cancel") or {}).get(
            "cleanup"
        ):
            asked_before = before
    body = client.post(f"/executions/{execution_id}/cancel", json={"mode": mode})
    if output is OutputFormat.JSON:
        print_json(body)
    elif asked_before is not None:
        stdout.print(Text(_cleanup_asked_before(body)))
    elif cleanup and body["status"] not in ("pending", "running", "paused", "cancelled"):
        stdout.print(
            Text("cleanup requested: undoing what the run applied, newest first (see ")
            .append(f"opsflow executions show {execution_id}")
            .append("); execution stays ")
            .append_text(_styled(body["status"]))
        )
    else:
        stdout.print(
            Text(f"cancel requested ({mode}); execution is ").append_text(_styled(body["status"]))
        )


def _cleanup_asked_before(detail: dict[str, Any]) -> str:
    """What a repeated cleanup request of an ended execution finds: the undo jobs the first
    request queued, done or still going."""
    asked = detail.get("cancel") or {}
    jobs = [
        (s["id"], j["status"])
        for s in detail.get("steps", [])
        for j in s.get("jobs", [])
        if j.get("purpose") == "cleanup"
    ]
    who = f" by {asked['by']}" if asked.get("by") else ""
    text = f"cleanup was asked for already{who} ({age(asked.get('requested_at'))}); "
    ended = [f"{step} {status}" for step, status in jobs if JobStatus(status).terminal]
    if jobs and len(ended) == len(jobs):
        text += f"nothing more to undo: {', '.join(ended)}"
    else:
        text += (
            f"still undoing ({len(ended)} of {len(jobs)} undo jobs ended; see "
            f"opsflow executions show {detail['id']})"
        )
    return text + f"; execution stays {detail['status']}"


def register(root: typer.Typer) -> None:
    root.command("run")(run)
    root.add_typer(executions_app, name="executions")
    root.command("logs")(logs)
    root.command("cancel")(cancel)
