"""Read a workflow definition from YAML or JSON and report every problem of it at once.

The steps: read YAML with positions (``yaml_source``), validate the models (``models``), run
the checks across steps (``checks``) and, for a directory, that named files exist (``files``).
All findings are gathered, located at their line and column, and raised together as one
``SpecInvalid``: an author fixes a file in one round, not one error per try.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from opsflow.errors import Problem, SpecInvalid
from opsflow.spec.checks import check_definition
from opsflow.spec.files import check_files
from opsflow.spec.findings import Finding, format_loc
from opsflow.spec.messages import findings_from_validation
from opsflow.spec.models import Workflow
from opsflow.spec.yaml_source import SourceMap, read_yaml

WORKFLOW_FILENAMES = ("workflow.yaml", "workflow.yml")


def validate_text(
    text: str, filename: str = "<input>", *, base_dir: Path | None = None
) -> tuple[Workflow | None, list[Problem]]:
    """The workflow in YAML ``text`` and its problems; the workflow is None when there are any.

    Never raises for bad input: this is what editors and ``opsflow validate`` call.
    """
    parsed = read_yaml(text)
    if parsed.data is None and parsed.findings:
        return None, _located(parsed.findings, parsed.source)
    return validate_data(
        parsed.data, source=parsed.source, early=parsed.findings, base_dir=base_dir
    )


def validate_data(
    data: Any,
    *,
    source: SourceMap | None = None,
    early: list[Finding] | None = None,
    base_dir: Path | None = None,
) -> tuple[Workflow | None, list[Problem]]:
    """Validate already parsed data (JSON, or YAML read by ``read_yaml``); never raises."""
    findings = list(early or [])
    workflow: Workflow | None = None
    try:
        workflow = Workflow.model_validate(data)
    except ValidationError as exc:
        findings += _not_under(findings_from_validation(exc, data), findings)
    findings += check_definition(data)
    if base_dir is not None:
        findings += check_files(data, base_dir)
    problems = _located(findings, source or SourceMap())
    return (None if problems else workflow), problems


def load_workflow(
    text: str, filename: str = "<input>", *, base_dir: Path | None = None
) -> Workflow:
    """The workflow in YAML ``text``; raises SpecInvalid holding every located problem."""
    workflow, problems = validate_text(text, filename, base_dir=base_dir)
    return _or_raise(workflow, problems, filename)


def load_definition(
    obj: Any, filename: str = "<input>", *, base_dir: Path | None = None
) -> Workflow:
    """The workflow in already parsed data (a JSON body); problems carry paths, not lines."""
    workflow, problems = validate_data(obj, base_dir=base_dir)
    return _or_raise(workflow, problems, filename)


def find_workflow_file(path: str | Path) -> Path:
    """``path`` itself, or ``workflow.yaml`` inside it when it is a directory."""
    path = Path(path)
    if path.is_dir():
        for name in WORKFLOW_FILENAMES:
            if (path / name).is_file():
                return path / name
        raise SpecInvalid(f"{path} has no workflow.yaml")
    return path


def load_workflow_file(path: str | Path) -> Workflow:
    """Read a workflow file (or a directory holding ``workflow.yaml``), checking named files."""
    file = find_workflow_file(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise SpecInvalid(f"cannot read {file}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = Problem("", f"the file is not UTF-8 text (byte {exc.start})")
        raise SpecInvalid(f"{file}: {problem.msg}", problems=[problem]) from exc
    return load_workflow(text, str(file), base_dir=file.parent)


def canonical(workflow: Workflow) -> dict[str, Any]:
    """A stable JSON-compatible form: equal for definitions that mean the same.

    Defaults are left out, so writing ``join: all`` or omitting it is the same definition, and
    formatting, comments and key order of the YAML do not matter. Loading the result gives back
    an equal ``Workflow``.
    """
    return workflow.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def _or_raise(workflow: Workflow | None, problems: list[Problem], filename: str) -> Workflow:
    if workflow is None or problems:
        first = problems[0].format(filename) if problems else filename
        count = f"{len(problems)} problems" if len(problems) != 1 else "1 problem"
        raise SpecInvalid(f"invalid workflow ({count}); first: {first}", problems=problems)
    return workflow


def _not_under(findings: list[Finding], earlier: list[Finding]) -> list[Finding]:
    """Drop findings inside a place already reported (a YAML value we could not read)."""
    taken = [f.loc for f in earlier if f.loc]
    return [f for f in findings if not any(f.loc[: len(t)] == t for t in taken)]


def _located(findings: list[Finding], source: SourceMap) -> list[Problem]:
    out: dict[tuple[str, str], Problem] = {}
    for finding in findings:
        where = finding.position or source.position(finding.loc, key=finding.at_key)
        loc = format_loc(finding.loc)
        problem = Problem(
            loc, finding.msg, where.line if where else None, where.column if where else None
        )
        out.setdefault((loc, finding.msg), problem)
    return sorted(out.values(), key=lambda p: (p.line or 0, p.column or 0))
