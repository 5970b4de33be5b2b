"""Offline commands: ``opsflow validate`` and ``opsflow schema``; neither needs a server.

``validate`` uses the same loader as the server, so a file it accepts is a file the server
accepts, and it prints each problem as ``file:line: loc: message`` so editors and CI logs link
straight to the line. ``apply`` runs the same check before it sends anything. When the CLI has
a server's token (given, or the admin token on the server's own machine), ``validate`` also
asks that server what a valid file names that it lacks (channels, connections, workflows,
secrets), the warnings ``apply`` gives; ``--offline`` skips that.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import typer

from opsflow.cli.bundle import WorkflowSource, find_workflows
from opsflow.cli.client import ApiClient, Connection
from opsflow.cli.output import CliError, OutputFormat, OutputOption, print_json, say, stderr
from opsflow.errors import Problem, SpecInvalid
from opsflow.words import counted


@dataclass(frozen=True)
class FileCheck:
    """The result of loading one workflow file: its id when valid, every problem otherwise."""

    source: WorkflowSource
    workflow_id: str | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    """Of a valid file: what is likely not meant (``{{ }}`` in a script's run); see
    `opsflow.spec.loader.warnings_of`."""

    @property
    def valid(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """The ``--output json`` shape: ``{file, valid, errors: [{loc, msg, line, column}],
        warnings: [same]}``."""
        return {
            "file": str(self.source.file),
            "valid": self.valid,
            "errors": [
                {"loc": p.loc, "msg": p.msg, "line": p.line, "column": p.column}
                for p in self.problems
            ],
            "warnings": [
                {"loc": p.loc, "msg": p.msg, "line": p.line, "column": p.column}
                for p in self.warnings
            ],
        }


def check_file(source: WorkflowSource) -> FileCheck:
    """Load one workflow file with the real spec loader and collect every problem it has."""
    # imported here so commands that never load YAML start without the whole spec model
    from opsflow.spec.loader import find_workflow_file, load_workflow_file, warnings_of

    try:
        workflow = load_workflow_file(source.file)
        # read again only once valid, which means it is UTF-8
        text = find_workflow_file(source.file).read_text(encoding="utf-8")
    except SpecInvalid as exc:
        problems = exc.problems or [Problem(loc="", msg=exc.message)]
        return FileCheck(source, problems=problems)
    except OSError as exc:
        return FileCheck(source, problems=[Problem(loc="", msg=f"cannot read: {exc.strerror}")])
    return FileCheck(source, workflow_id=workflow.id, warnings=warnings_of(text))


def check_paths(paths: list[Path]) -> list[FileCheck]:
    """Check every workflow the paths name (files, workflow dirs, dirs of workflow dirs)."""
    return [check_file(source) for path in paths for source in find_workflows(path)]


def with_server_warnings(connection: Connection, checks: list[FileCheck]) -> list[FileCheck]:
    """``checks`` with, on each valid file, the server's warnings about what it names that the
    server lacks (``POST /workflows/validate``, as ``apply`` reports them), each once. Without
    a token nothing is asked; a server that cannot be reached is said on stderr and skipped."""
    if connection.token is None or not any(check.valid for check in checks):
        return checks
    client = ApiClient(connection, timeout=10.0)
    try:
        result = []
        for check in checks:
            if not check.valid:
                result.append(check)
                continue
            text = check.source.file.read_bytes()
            answer = client.request(
                "POST",
                "/workflows/validate",
                files={"definition": (check.source.file.name, text, "application/yaml")},
            )
            seen = {(w.loc, w.msg) for w in check.warnings}
            extra = [
                Problem(str(w.get("loc") or ""), str(w.get("msg")), w.get("line"), w.get("column"))
                for w in (answer.get("warnings") if isinstance(answer, dict) else None) or []
                if (str(w.get("loc") or ""), str(w.get("msg"))) not in seen
            ]
            result.append(replace(check, warnings=[*check.warnings, *extra]))
        return result
    except CliError as exc:
        stderr.print(
            f"note: what the files name on the server (channels, connections, workflows, "
            f"secrets) was not checked: {exc.message} (--offline skips this)",
            markup=False,
        )
        return checks
    finally:
        client.close()


def print_checks(checks: list[FileCheck], output: OutputFormat, *, quiet_ok: bool = False) -> None:
    """Print results as ``file:line: loc: message`` lines (plus "ok" lines, and warnings as
    ``file:line: loc: warning: message``) or as JSON.

    In text, when any file has problems, the last line is the summary
    ``N problems in M files``.
    """
    if output is OutputFormat.JSON:
        print_json([check.as_dict() for check in checks])
        return
    for check in checks:
        if check.valid:
            if not quiet_ok:
                say(f"{check.source.file}: ok ({check.workflow_id})")
            for warning in check.warnings:
                say(
                    Problem(warning.loc, f"warning: {warning.msg}", warning.line).format(
                        str(check.source.file)
                    )
                )
            continue
        for problem in check.problems:
            say(problem.format(str(check.source.file)))
    bad = [check for check in checks if not check.valid]
    if bad:
        # On stdout, after the problems and on a line of its own: were it on stderr, anything
        # that shows both streams together could run it onto the last problem's line.
        count = sum(len(check.problems) for check in bad)
        say(f"{counted(count, 'problem')} in {counted(len(bad), 'file')}")


def validate(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Workflow YAML files, workflow directories, or directories of them.",
            show_default=False,
        ),
    ],
    output: OutputOption = OutputFormat.TEXT,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Do not ask the server (found by its token) what the files name that it lacks.",
        ),
    ] = False,
) -> None:
    """Check workflow definitions; exit 1 and list every problem if any is invalid. With a
    server's token, also warn of channels, connections, workflows and secrets it lacks."""
    checks = check_paths(paths)
    connection = ctx.find_root().obj
    if not offline and isinstance(connection, Connection):
        checks = with_server_warnings(connection, checks)
    print_checks(checks, output)
    if not all(check.valid for check in checks):
        raise typer.Exit(1)


def schema() -> None:
    """Print the JSON Schema of workflow YAML, for editors that complete and check it."""
    from opsflow.spec.schema import workflow_json_schema

    print_json(workflow_json_schema())


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(schema)
