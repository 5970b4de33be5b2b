"""Checks across steps: ids, needs, outcomes, cycles, plan_from, trigger params.

These run on the plain data, not on the validated models, so they still run when some field
elsewhere is wrong: a file with a typo in one step and a cycle between two others reports
both. Every access is defensive; a value of the wrong shape is skipped here because the models
already report it.
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from opsflow.spec.findings import Finding
from opsflow.spec.params import Param
from opsflow.spec.template import is_template
from opsflow.spec.template_checks import Scope, check_templates, template_strings
from opsflow.spec.triggers import TriggerType
from opsflow.status import OUTCOMES_BY_TYPE, Outcome, StepType

# Outcomes a need may name after the dot; the bare id means Outcome.SUCCESS.
NAMED_OUTCOMES: list[Outcome] = [o for o in Outcome if o != Outcome.SUCCESS]
_TRIGGER_ROOTS = frozenset({"trigger", "incident", "git", "workflow", "execution", "secrets"})


def parse_need(entry: str) -> tuple[str, Outcome] | None:
    """``'plan'`` -> ``('plan', SUCCESS)``, ``'plan.failed'`` -> ``('plan', FAILED)``; None if
    the outcome is not a named one. Shared with ``spec/graph.py`` so both read needs alike."""
    target, dot, word = entry.partition(".")
    if not dot:
        return target, Outcome.SUCCESS
    if word in NAMED_OUTCOMES:
        return target, Outcome(word)
    return None


def outcomes_of(kind: StepType) -> list[Outcome]:
    """Outcomes a step of ``kind`` can end with, in the enum's order, ``always`` last."""
    return [o for o in NAMED_OUTCOMES if o in OUTCOMES_BY_TYPE[kind]] + [Outcome.ALWAYS]


@dataclass
class _Step:
    index: int
    id: str
    type: StepType | None
    raw: dict[str, Any]
    deps: list[int] = field(default_factory=list)  # indexes of the steps it needs


@dataclass
class _Definition:
    """The parts of the data the checks read, each only when it has the right shape."""

    id: object
    steps: list[_Step]
    by_id: dict[str, _Step]
    params: dict[str, Any]
    triggers: list[Any]
    notify_channel: object


def check_definition(data: Any) -> list[Finding]:
    """Every cross-step problem of the definition ``data`` (the parsed YAML or JSON)."""
    if not isinstance(data, dict):
        return []
    d = _read(data)
    out: list[Finding] = []
    out += _check_ids(d)
    out += _check_needs(d)
    out += _check_cycles(d)
    out += _check_steps(d)
    out += _check_triggers(d)
    declared = sorted(d.params)
    known = [s.id for s in d.steps if d.by_id[s.id] is s]
    for step in d.steps:
        if step.type is None:
            continue
        scope = Scope(step.id, frozenset(_ancestors(d, step)), known, declared)
        out += check_templates(("steps", step.index), step.type, step.raw, scope)
    return out


def _read(data: dict[str, Any]) -> _Definition:
    raw_steps = data.get("steps")
    steps: list[_Step] = []
    for i, raw in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            kind = raw.get("type")
            typed = StepType(kind) if isinstance(kind, str) and kind in set(StepType) else None
            steps.append(_Step(i, raw["id"], typed, raw))
    by_id: dict[str, _Step] = {}
    for step in steps:
        by_id.setdefault(step.id, step)
    params = data.get("params")
    triggers = data.get("triggers")
    notify = data.get("notify")
    return _Definition(
        id=data.get("id"),
        steps=steps,
        by_id=by_id,
        params=params if isinstance(params, dict) else {},
        triggers=triggers if isinstance(triggers, list) else [],
        notify_channel=notify.get("channel") if isinstance(notify, dict) else None,
    )


def _hint(word: str, options: list[str]) -> str:
    match = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _known(d: _Definition) -> str:
    return ", ".join(d.by_id) or "none"


def _check_ids(d: _Definition) -> Iterator[Finding]:
    for step in d.steps:
        first = d.by_id[step.id]
        if first is not step:
            yield Finding(
                ("steps", step.index, "id"),
                f"duplicate step id '{step.id}': steps[{first.index}] already has it; "
                "step ids must be unique",
            )


def _needs(step: _Step) -> Iterator[tuple[int, str]]:
    needs = step.raw.get("needs")
    if isinstance(needs, list):
        for k, entry in enumerate(needs):
            if isinstance(entry, str):
                yield k, entry


def _check_needs(d: _Definition) -> Iterator[Finding]:
    for step in d.steps:
        seen: set[str] = set()
        for k, entry in _needs(step):
            loc = ("steps", step.index, "needs", k)
            if entry in seen:
                yield Finding(loc, f"'{entry}' is listed twice in needs: keep one")
                continue
            seen.add(entry)
            target, _, word = entry.partition(".")
            parsed = parse_need(entry)
            if target == step.id:
                yield Finding(loc, f"step '{step.id}' cannot need itself")
            elif target not in d.by_id:
                hint = _hint(target, list(d.by_id))
                yield Finding(loc, f"unknown step '{target}'{hint}; known steps: {_known(d)}")
            elif parsed is None:
                allowed = ", ".join(NAMED_OUTCOMES)
                yield Finding(loc, f"unknown outcome '{word}' in '{entry}'; use one of: {allowed}")
            else:
                other = d.by_id[target]
                outcome = parsed[1]
                possible = OUTCOMES_BY_TYPE[other.type] if other.type else None
                if (
                    possible is not None
                    and outcome not in (Outcome.SUCCESS, Outcome.ALWAYS)
                    and outcome not in possible
                ):
                    can = ", ".join(outcomes_of(other.type) if other.type else [])
                    yield Finding(
                        loc,
                        f"step '{target}' is a {other.type} step and has no outcome "
                        f"'{outcome}'; it can be: {can}",
                    )
                step.deps.append(other.index)


def _check_cycles(d: _Definition) -> Iterator[Finding]:
    by_index = {s.index: s for s in d.steps if d.by_id[s.id] is s}
    after: dict[int, list[int]] = {i: [] for i in by_index}  # step -> steps that need it
    for step in by_index.values():
        for dep in step.deps:
            if dep != step.index and dep in after:
                after[dep].append(step.index)
    reported: set[int] = set()
    for start in sorted(by_index):
        if start in reported:
            continue
        path = _path_back(start, after)
        if path is None:
            continue
        reported.update(path)
        names = " -> ".join(by_index[i].id for i in [*path, start])
        closing = by_index[path[-1]].id
        step = by_index[start]
        k = next((k for k, e in _needs(step) if e.partition(".")[0] == closing), 0)
        yield Finding(
            ("steps", start, "needs", k),
            f"needs form a cycle: {names}; remove one of these needs",
        )


def _path_back(start: int, after: dict[int, list[int]]) -> list[int] | None:
    """Shortest path start -> ... -> last with an edge last -> start, as [start, ..., last]."""
    parent: dict[int, int] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in after[node]:
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return path[::-1]
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return None


def _ancestors(d: _Definition, step: _Step) -> set[str]:
    by_index = {s.index: s for s in d.steps}
    seen: set[int] = set()
    todo = list(step.deps)
    while todo:
        i = todo.pop()
        if i not in seen:
            seen.add(i)
            todo.extend(by_index[i].deps)
    seen.discard(step.index)
    return {by_index[i].id for i in seen}


def _check_steps(d: _Definition) -> Iterator[Finding]:
    for step in d.steps:
        loc = ("steps", step.index)
        raw = step.raw
        if step.type == StepType.TERRAFORM and isinstance(raw.get("plan_from"), str):
            source = raw["plan_from"]
            plan = d.by_id.get(source)
            where = (*loc, "plan_from")
            if plan is None:
                yield Finding(where, f"unknown step '{source}'; known steps: {_known(d)}")
            elif plan.type != StepType.TERRAFORM or plan.raw.get("action") != "plan":
                yield Finding(where, f"step '{source}' is not a terraform step with action plan")
            elif source not in _ancestors(d, step):
                yield Finding(
                    where, f"step '{source}' is not upstream of '{step.id}': add it to needs"
                )
            else:
                yield from _saved_plan_fields(loc, raw, plan.raw, source)
        if step.type == StepType.NOTIFY and raw.get("channel") is None and not d.notify_channel:
            yield Finding(
                (*loc, "channel"),
                "'channel' is required: set it here or notify.channel for the whole workflow",
            )
        if step.type == StepType.WORKFLOW and raw.get("workflow") == d.id:
            yield Finding((*loc, "workflow"), "a workflow step cannot run its own workflow")


# What a saved plan fixes: an apply of it works on the plan's workspace (its state), variables
# and var files. The same value written again is harmless; another one would be ignored, or,
# for the workspace, apply the plan into another state.
_PLAN_FIXES = ("workspace", "vars", "var_files")


def _saved_plan_fields(
    loc: tuple[str | int, ...], apply: dict[str, Any], plan: dict[str, Any], plan_id: str
) -> Iterator[Finding]:
    for name in _PLAN_FIXES:
        if name in apply and (apply[name] or None) != (plan.get(name) or None):
            yield Finding(
                (*loc, name),
                f"an apply with plan_from uses the plan's {name} (step '{plan_id}' has "
                f"{_shown(plan.get(name))}): remove '{name}' here, or set it on step "
                f"'{plan_id}'",
            )


def _shown(value: Any) -> str:
    return "none" if value is None else repr(value)


def _params(d: _Definition) -> dict[str, Param]:
    out: dict[str, Param] = {}
    for name, raw in d.params.items():
        try:
            out[name] = Param.model_validate(raw)
        except ValidationError:
            continue  # the models report it
    return out


def _check_triggers(d: _Definition) -> Iterator[Finding]:
    params = _params(d)
    declared = ", ".join(d.params) or "none"
    for t, trigger in enumerate(d.triggers):
        if not isinstance(trigger, dict):
            continue
        loc = ("triggers", t)
        given = trigger.get("params")
        given = given if isinstance(given, dict) else {}
        for name, value in given.items():
            where = (*loc, "params", name)
            if name not in d.params:
                hint = _hint(name, list(d.params))
                yield Finding(
                    where, f"unknown param '{name}'{hint}; declared: {declared}", at_key=True
                )
            elif name in params and not (isinstance(value, str) and is_template(value)):
                wrong = params[name].problem(value)
                if wrong:
                    yield Finding(where, wrong)
        if trigger.get("type") == TriggerType.SCHEDULE:
            for name, param in params.items():
                if param.required and param.default is None and name not in given:
                    yield Finding(
                        (*loc, "params"),
                        f"param '{name}' is required and has no default: set it here, "
                        "as nobody fills in a form for a scheduled run",
                    )
        if trigger.get("type") == TriggerType.WORKFLOW and trigger.get("workflow") == d.id:
            yield Finding((*loc, "workflow"), "a workflow cannot trigger itself")
        for sub, text in template_strings((*loc, "params"), given):
            yield from Scope.for_trigger(_TRIGGER_ROOTS).check(sub, text)
