"""Read a workflow definition from YAML or JSON and report every problem of it at once.

The steps: read YAML with positions (``yaml_source``), validate the models (``models``), run
the checks across steps (``checks``) and, for a directory, that named files exist (``files``).
All findings are gathered, located at their line and column, and raised together as one
``SpecInvalid``: an author fixes a file in one round, not one error per try.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from opsflow.errors import Problem, SpecInvalid
from opsflow.spec.checks import check_definition, too_many_steps
from opsflow.spec.files import check_files
from opsflow.spec.findings import Finding, Loc, format_loc, parse_loc
from opsflow.spec.messages import findings_from_validation
from opsflow.spec.models import Workflow
from opsflow.spec.template_checks import untemplated_markup
from opsflow.spec.yaml_source import LEADING_ZERO, SourceMap, read_yaml

WORKFLOW_FILENAMES = ("workflow.yaml", "workflow.yml")
_MISSING = object()


def validate_text(
    text: str, filename: str = "<input>", *, base_dir: Path | None = None
) -> tuple[Workflow | None, list[Problem]]:
    """The workflow in YAML ``text`` and its problems; the workflow is None when there are any.

    Never raises for bad input: this is what editors and ``opsflow validate`` call.
    """
    parsed = read_yaml(text)
    if parsed.data is None and parsed.findings:
        return None, _located(parsed.findings, parsed.source)
    workflow, problems = validate_data(
        parsed.data, source=parsed.source, early=parsed.findings, base_dir=base_dir
    )
    if workflow is None:
        # The numbers YAML versions read differently are listed with the other problems, so
        # the file is fixed in one round (not once everything else is right).
        extra = _ambiguous_in_invalid(parsed.data, parsed.source, problems)
        return workflow, _merged(problems, _located(extra, parsed.source))
    # A text field given an unquoted number or boolean gets the text as written (``1.10``,
    # ``0755``, ``TRUE``), not the number's spelling; other places must not hold a number
    # that YAML versions read differently.
    data = _as_written(parsed.data, workflow, parsed.source)
    if data is not parsed.data:
        workflow, problems = validate_data(
            data, source=parsed.source, early=parsed.findings, base_dir=base_dir
        )
    if workflow is None:
        return workflow, problems
    ambiguous = _ambiguous_numbers(workflow, parsed.source)
    if ambiguous:
        return None, _located(ambiguous, parsed.source)
    return workflow, problems


def validate_data(
    data: Any,
    *,
    source: SourceMap | None = None,
    early: list[Finding] | None = None,
    base_dir: Path | None = None,
) -> tuple[Workflow | None, list[Problem]]:
    """Validate already parsed data (JSON, or YAML read by ``read_yaml``); never raises."""
    findings = list(early or [])
    limit = too_many_steps(data)
    if limit is not None:  # checked first: a huge definition costs no more than counting
        return None, _located([*findings, limit], source or SourceMap())
    workflow: Workflow | None = None
    try:
        workflow = Workflow.model_validate(data)
    except ValidationError as exc:
        findings += _not_under(findings_from_validation(exc, data), findings)
    findings += check_definition(data)
    if base_dir is not None:
        findings += check_files(data, base_dir)
    if source is not None:
        findings = [_quoting_source(f, source) for f in findings]
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


def warnings_of(text: str | None, data: Any = None, extra: Iterable[Problem] = ()) -> list[Problem]:
    """Warnings about a valid definition (it is stored and runs, but likely not as meant),
    plus ``extra`` ones found elsewhere (what it names that the server lacks), each located at
    its line in the YAML ``text`` when given. ``data`` is the parsed definition (read from
    ``text`` when None). Sorted by line; never raises for bad input."""
    parsed = read_yaml(text) if text is not None and data is None else None
    if parsed is not None:
        data = parsed.data
    findings = untemplated_markup(data)
    for problem in extra:
        try:
            loc = parse_loc(problem.loc)
        except ValueError:
            loc = ()
        findings.append(Finding(loc, problem.msg))
    if not findings:
        return []  # the text is read for positions only when there is something to place
    if parsed is None and text is not None:
        parsed = read_yaml(text)
    return _located(findings, parsed.source if parsed is not None else SourceMap())


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


def _quoting_source(finding: Finding, source: SourceMap) -> Finding:
    """A type complaint about an unquoted scalar quotes the text as written and says how YAML
    read it, so ``message: 1.10`` is not reported as a mysterious 1.1, nor ``default: 0644`` of
    a string param as "default 644 is not a string"."""
    text = source.plain.get(finding.loc)
    if text is None:
        return finding
    hint = _ambiguous_hint(text)
    if hint is not None and not finding.msg.startswith("expected "):
        return Finding(
            finding.loc, _as_written_in(finding.msg, text) + hint, finding.at_key, finding.position
        )
    if not finding.msg.startswith("expected "):
        return finding
    hint = f" (the unquoted {text or 'empty value'} is not text in YAML: quote it, '{text}')"
    return Finding(finding.loc, finding.msg + hint, finding.at_key, finding.position)


def _at(data: Any, loc: Loc) -> Any:
    """The value at ``loc`` in nested dicts and lists; ``_MISSING`` when there is none."""
    for part in loc:
        if not isinstance(data, dict | list):
            return _MISSING
        try:
            data = data[part]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return data


def _replaced(data: Any, loc: Loc, value: Any) -> Any:
    """A copy of ``data`` with ``value`` at ``loc`` (copying only the containers on the way)."""
    if not loc:
        return value
    head, rest = loc[0], loc[1:]
    if isinstance(data, dict):
        return {**data, head: _replaced(data[head], rest, value)}
    index = int(head)
    copy = list(data)
    copy[index] = _replaced(copy[index], rest, value)
    return copy


def _as_written(data: Any, workflow: Workflow, source: SourceMap) -> Any:
    """``data`` with each unquoted scalar that became text in ``workflow`` set to its text as
    written; ``data`` itself when every such text already reads the same."""
    dumped = workflow.model_dump(by_alias=True)
    for loc, text in source.plain.items():
        value = _at(dumped, loc)
        if isinstance(value, str) and value != text:
            data = _replaced(data, loc, text)
    return data


def _ambiguous_numbers(workflow: Workflow, source: SourceMap) -> list[Finding]:
    """Unquoted numbers that stayed numbers but would not reach a step as the file says them:
    a leading zero (YAML 1.2 reads ``0755`` as 755, YAML 1.1 tools as octal 493) and the
    infinities and NaN, which JSON cannot hold."""
    dumped = workflow.model_dump(by_alias=True)
    found: list[Finding] = []
    for loc, text in source.plain.items():
        value = _at(dumped, loc)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if LEADING_ZERO.fullmatch(text) or (isinstance(value, float) and not math.isfinite(value)):
            found.append(Finding(loc, _ambiguous_message(text, value)))
    return found


def _ambiguous_message(text: str, value: Any) -> str:
    """The problem with an unquoted ``text`` (read as ``value``) left a number."""
    if LEADING_ZERO.fullmatch(text):
        digits = text.lstrip("+-").lstrip("0") or "0"
        return (
            f"{text} has a leading zero, which YAML versions read differently "
            f"(YAML 1.2: {value}; YAML 1.1: octal): write {digits} for the number, "
            f"0o{digits} for octal, or quote it ('{text}') for text"
        )
    return f"{text} is not a finite number: quote it ('{text}') for text"


def _ambiguous_hint(text: str) -> str | None:
    """What to do about an unquoted ``text`` YAML versions read differently (a leading zero,
    an infinity, NaN); None for any other text."""
    if LEADING_ZERO.fullmatch(text):
        digits = text.lstrip("+-").lstrip("0") or "0"
        return (
            f" (the unquoted {text} is read as the number {int(text)}, dropping the leading "
            f"zero: quote it, '{text}', for text; write {digits} for the number, 0o{digits} "
            "for octal)"
        )
    if _NOT_FINITE.fullmatch(text):
        return f" (the unquoted {text} is not a finite number: quote it, '{text}', for text)"
    return None


_NOT_FINITE = re.compile(r"[-+]?\.(inf|Inf|INF)|\.nan|\.NaN|\.NAN")


def _as_written_in(msg: str, text: str) -> str:
    """``msg`` naming the value as ``text`` (``0644``, ``.inf``) where it named the number YAML
    read (``644``, ``inf``, ``'inf'``)."""
    if LEADING_ZERO.fullmatch(text):
        read = str(int(text))
    elif text.lower().endswith("nan"):
        read = "nan"
    else:
        read = "-inf" if text.startswith("-") else "inf"
    return re.sub(rf"(?<![\w.'-])'?{re.escape(read)}'?(?![\w.])", text, msg, count=1)


def _ambiguous_in_invalid(data: Any, source: SourceMap, problems: list[Problem]) -> list[Finding]:
    """In a definition refused for other reasons, the unquoted leading-zero numbers,
    infinities and NaNs in places that stay numbers, each not already reported.

    Which places take text is learnt by validating the models once more with each such
    scalar set to a text (its text as written, plus a letter so no int field reads it as a
    number): a place that then has a new complaint does not take
    text, so the number stays a number there and is reported as ``_ambiguous_numbers`` would.
    """
    candidates = {
        loc: text for loc, text in source.plain.items() if _ambiguous_hint(text) is not None
    }
    reported = {p.loc for p in problems}
    candidates = {loc: t for loc, t in candidates.items() if format_loc(loc) not in reported}
    if not candidates:
        return []
    before = _model_findings(data)
    texts = data
    for loc, text in candidates.items():
        texts = _replaced(texts, loc, f"{text}_")  # not numeric even to lax int fields
    new = _model_findings(texts) - before
    found: list[Finding] = []
    for loc, text in candidates.items():
        if any(loc[: len(where)] == where for where in new):
            found.append(Finding(loc, _ambiguous_message(text, _at(data, loc))))
    return found


def _model_findings(data: Any) -> set[Loc]:
    """The places the models complain about in ``data`` (no checks across steps)."""
    try:
        Workflow.model_validate(data)
    except ValidationError as exc:
        return {f.loc for f in findings_from_validation(exc, data)}
    return set()


def _merged(problems: list[Problem], more: list[Problem]) -> list[Problem]:
    return sorted([*problems, *more], key=lambda p: (p.line or 0, p.column or 0))


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
