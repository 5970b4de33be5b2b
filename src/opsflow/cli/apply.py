"""``opsflow apply``: validate locally, then upload each workflow directory as a new version.

Validation runs first, for every workflow named, and a single invalid file stops the command
before anything is sent: a partly applied set of workflows is harder to reason about than none.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from opsflow.cli.bundle import (
    WARN_BYTES,
    BundlePlan,
    WorkflowSource,
    human_size,
    pack_bundle,
    plan_bundle,
)
from opsflow.cli.client import ApiClient, client_for
from opsflow.cli.output import (
    CliError,
    OutputFormat,
    OutputOption,
    UsageError,
    print_json,
    say,
    stderr,
)
from opsflow.cli.validate import FileCheck, check_paths, print_checks
from opsflow.words import counted


def apply(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Option(
            "--file",
            "-f",
            help="A workflow directory (its workflow.yaml and every file beside it are "
            "uploaded), a directory of them, or a YAML file (uploaded with the files its steps "
            "name). Repeatable.",
            show_default=False,
        ),
    ],
    draft: Annotated[
        bool, typer.Option("--draft", help="Save as the draft without publishing a version.")
    ] = False,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Create or update workflows from their directories, publishing a new version if changed."""
    checks = check_paths(paths)
    if not all(check.valid for check in checks):
        print_checks([c for c in checks if not c.valid], output)
        raise typer.Exit(1)
    _refuse_duplicate_ids(checks)
    # Every bundle is measured before anything is sent: one too big stops them all.
    plans = [plan_bundle(check.source) for check in checks]
    for check, plan in zip(checks, plans, strict=True):
        if plan.total_bytes > WARN_BYTES:
            stderr.print(
                f"warning: {check.source.file}: uploading {human_size(plan.total_bytes)} "
                f"in {counted(len(plan.files), 'file')}",
                markup=False,
            )
    client = client_for(ctx)
    results: list[dict[str, Any]] = []
    try:
        if len(checks) == 1:
            results.append(_apply_one(client, checks[0], plans[0], draft=draft, output=output))
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            with Progress(
                TextColumn("applying"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                console=stderr,
                transient=True,
            ) as progress:
                task = progress.add_task("", total=len(checks))
                for check, plan in zip(checks, plans, strict=True):
                    progress.update(task, description=str(check.workflow_id))
                    results.append(_apply_one(client, check, plan, draft=draft, output=output))
                    progress.advance(task)
    finally:
        if output is OutputFormat.JSON and results:
            print_json(results[0] if len(checks) == 1 else results)


def _refuse_duplicate_ids(checks: list[FileCheck]) -> None:
    counts = Counter(check.workflow_id for check in checks)
    repeated = sorted(str(wid) for wid, n in counts.items() if n > 1)
    if repeated:
        files = ", ".join(str(c.source.file) for c in checks if c.workflow_id in repeated)
        raise UsageError(
            f"the same workflow id ({', '.join(repeated)}) is defined by several files: {files}",
            hint="give each workflow its own `id`, or apply the files one at a time",
        )


def sent_files(plan: BundlePlan, shown: int = 10) -> str:
    """``3 files (2.1 KiB): a.sh, infra/main.tf, ...`` for the apply report."""
    if not plan.files:
        return "no files"
    names = ", ".join(plan.files[:shown])
    more = f" and {len(plan.files) - shown} more" if len(plan.files) > shown else ""
    count = counted(len(plan.files), "file")
    return f"{count} ({human_size(plan.total_bytes)}): {names}{more}"


def _apply_one(
    client: ApiClient, check: FileCheck, plan: BundlePlan, *, draft: bool, output: OutputFormat
) -> dict[str, Any]:
    """Upload one definition with its bundle; print what happened and what was sent unless
    printing JSON."""
    source: WorkflowSource = check.source
    workflow_id = str(check.workflow_id)
    definition = source.file.read_text(encoding="utf-8")
    bundle = pack_bundle(source.directory, plan.files)
    try:
        result = client.request(
            "PUT",
            f"/workflows/{workflow_id}",
            params={"publish": None if draft else True},
            data={"definition": definition},
            files={"bundle": (f"{workflow_id}.tar.gz", bundle, "application/gzip")},
        )
    except CliError as exc:
        raise type(exc)(
            f"{source.file}: {exc.message}", problems=exc.problems, hint=exc.hint
        ) from exc
    if not isinstance(result, dict):
        raise CliError(f"{source.file}: unexpected answer from the server: {result!r}")
    if output is OutputFormat.TEXT:
        say(f"{workflow_id}: {describe_apply(result, draft=draft)}")
        say(f"  sent {source.file.name} with {sent_files(plan)}")
        for warning in result.get("warnings") or []:
            say(f"  warning: {source.file}: {warning['loc']}: {warning['msg']}")
        if not draft and result.get("created_version"):
            for line in hook_lines(workflow_id, client.get(f"/workflows/{workflow_id}/triggers")):
                say(line)
    return result


def hook_lines(workflow_id: str, triggers: Any) -> list[str]:
    """Where each hook trigger that has had no delivery yet is reached, and how its sender gets
    the secret (a generated one is shown only by rotate-secret)."""
    lines: list[str] = []
    for trigger in triggers if isinstance(triggers, list) else []:
        if not trigger.get("url") or trigger.get("last_deliveries"):
            continue
        name, secret = trigger["name"], trigger.get("secret") or ""
        lines.append(f"  trigger {name} ({trigger['type']}): POST {trigger['url']}")
        if secret == "generated":
            lines.append(
                f"    its secret: opsflow triggers rotate-secret {workflow_id} {name} "
                "(shows a new one once)"
            )
        elif secret:
            lines.append(f"    its {secret} signs or authorizes deliveries")
    return lines


def describe_apply(result: dict[str, Any], *, draft: bool) -> str:
    """``created version 3``, ``unchanged (version 3)`` or ``saved draft``."""
    if draft:
        return "saved draft"
    version = result.get("version")
    if result.get("created_version") or result.get("changed"):
        return f"created version {version}"
    return f"unchanged (version {version})"


def register(app: typer.Typer) -> None:
    app.command()(apply)
