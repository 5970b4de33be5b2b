"""Checks across steps: ids, needs, outcomes, cycles, plan_from, trigger params.

These run on the plain data, not on the validated models, so they still run when some field
elsewhere is wrong: a file with a typo in one step and a cycle between two others reports
both. Every access is defensive; a value of the wrong shape is skipped here because the models
already report it.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from opsflow.spec.fan_out import FAN_OUT_ROOTS
from opsflow.spec.findings import Finding, Position, listing
from opsflow.spec.models import MAX_STEPS
from opsflow.spec.notifications import RUN_END_FIELDS
from opsflow.spec.params import Param
from opsflow.spec.template import FIELDS, is_template
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
    pos: int  # position in _Definition.steps (``index`` counts every entry of the YAML)
    deps: list[int] = field(default_factory=list)  # positions of the steps it needs


@dataclass
class _Definition:
    """The parts of the data the checks read, each only when it has the right shape."""

    id: object
    steps: list[_Step]
    by_id: dict[str, _Step]
    params: dict[str, Any]
    triggers: list[Any]
    notify_channel: object
    notify_runs: bool = False  # notify is a list of run-end messages (no default channel)
    hints_left: int = 50  # did-you-mean costs a scan of every id: only for the first findings
    _ancestors: list[int] | None = None

    def ancestors(self) -> list[int]:
        """Per step index, the set of steps upstream of it as the bits of one integer.

        Computed once over the strongly connected components in topological order (one OR per
        need), so "is A upstream of B" is one bit test instead of a walk per step.
        """
        if self._ancestors is None:
            bits = [0] * len(self.steps)
            for component in _components(self):
                mask = 0
                for i in component:
                    for dep in self.steps[i].deps:
                        mask |= bits[dep] | (1 << dep)
                for i in component:
                    bits[i] = mask
            self._ancestors = bits
        return self._ancestors

    def upstream(self, ancestor: _Step, step: _Step) -> bool:
        return ancestor.pos != step.pos and bool(self.ancestors()[step.pos] >> ancestor.pos & 1)


class _Upstream:
    """``name in upstream``: whether step ``name`` is upstream of one step (a bit test)."""

    def __init__(self, d: _Definition, step: _Step) -> None:
        self._d = d
        self._step = step

    def __contains__(self, name: object) -> bool:
        other = self._d.by_id.get(name) if isinstance(name, str) else None
        return other is not None and self._d.upstream(other, self._step)


def too_many_steps(data: Any) -> Finding | None:
    """The finding for a definition with more than ``MAX_STEPS`` steps, checked before
    anything else so that a huge definition costs no more than counting its steps."""
    steps = data.get("steps") if isinstance(data, dict) else None
    if isinstance(steps, list) and len(steps) > MAX_STEPS:
        return steps_limit_finding(len(steps))
    return None


def steps_limit_finding(count: int, position: Position | None = None) -> Finding:
    """The finding for a definition with ``count`` (or at least ``count``) steps, more than
    ``MAX_STEPS``."""
    return Finding(
        ("steps",),
        f"the workflow has more than {MAX_STEPS:,} steps (the limit): split it into "
        "workflows that trigger each other (a workflow trigger or a workflow step)",
        position=position,
    )


def check_definition(data: Any) -> list[Finding]:
    """Every cross-step problem of the definition ``data`` (the parsed YAML or JSON).

    Linear in the size of the definition (upstream questions are one bit test each), so a
    definition of ``MAX_STEPS`` steps is checked in well under a second.
    """
    if not isinstance(data, dict):
        return []
    limit = too_many_steps(data)
    if limit is not None:
        return [limit]
    d = _read(data)
    out: list[Finding] = []
    out += _check_ids(d)
    out += _check_needs(d)
    out += _check_cycles(d)
    out += _check_steps(d)
    out += _check_triggers(d)
    declared = sorted(d.params)
    known = {s.id: None for s in d.steps if d.by_id[s.id] is s}
    dashed: dict[str, str] = {}
    for sid in known:
        if "-" in sid:
            dashed.setdefault(sid.split("-", 1)[0], sid)
    for step in d.steps:
        if step.type is None:
            continue
        scope = Scope(step.id, _Upstream(d, step), known, declared, dashed=dashed)
        loc = ("steps", step.index)
        fans = step.raw.get("for_each") is not None or step.raw.get("matrix") is not None
        for name in ("for_each", "matrix"):
            # The list itself is rendered before any item exists: item and index not yet.
            for where, text in template_strings((*loc, name), step.raw.get(name)):
                out.extend(scope.check(where, text))
        if fans:
            scope = dataclasses.replace(scope, roots=scope.roots | FAN_OUT_ROOTS)
        out += check_templates(loc, step.type, step.raw, scope)
    out += _check_outputs(data.get("outputs"), known, declared, dashed)
    out += _check_run_notifications(data.get("notify"), known, declared, dashed)
    return out


def _check_outputs(
    outputs: Any, known: dict[str, None], declared: list[str], dashed: dict[str, str]
) -> Iterator[Finding]:
    """The workflow's ``outputs`` are rendered when the run completes: every step may be
    read (one that did not run reads as having no output)."""
    if not isinstance(outputs, dict):
        return
    scope = Scope(None, known, known, declared, dashed=dashed)
    for loc, text in template_strings(("outputs",), outputs):
        yield from scope.check(loc, text, place="a workflow's outputs")


def _check_run_notifications(
    notify: Any, known: dict[str, None], declared: list[str], dashed: dict[str, str]
) -> Iterator[Finding]:
    """A run-end message (``notify[i].message``/``title``) is rendered when the run has ended:
    every step may be read, and ``execution`` carries the run's summary. Secrets are refused:
    the message is stored in the outbox as rendered."""
    if not isinstance(notify, list):
        return
    fields = {**FIELDS, "execution": FIELDS["execution"] | RUN_END_FIELDS}
    scope = Scope(None, known, known, declared, dashed=dashed, fields=fields)
    for index, entry in enumerate(notify):
        if not isinstance(entry, dict):
            continue
        for name in ("message", "title"):
            for loc, text in template_strings(("notify", index, name), entry.get(name)):
                yield from scope.check(loc, text, place="a run-end message")


def _read(data: dict[str, Any]) -> _Definition:
    raw_steps = data.get("steps")
    steps: list[_Step] = []
    for i, raw in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            kind = raw.get("type")
            typed = StepType(kind) if isinstance(kind, str) and kind in set(StepType) else None
            steps.append(_Step(i, raw["id"], typed, raw, len(steps)))
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
        notify_runs=isinstance(notify, list),
    )


def _a(kind: StepType) -> str:
    """``a script``, ``an approval``."""
    return f"an {kind}" if str(kind)[0] in "aeiou" else f"a {kind}"


def _hint(word: str, options: list[str], d: _Definition | None = None) -> str:
    if d is not None:
        if d.hints_left <= 0:
            return ""
        d.hints_left -= 1
    match = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _known(d: _Definition) -> str:
    return listing(d.by_id)


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
                hint = _hint(target, list(d.by_id), d)
                yield Finding(loc, f"unknown step '{target}'{hint}; known steps: {_known(d)}")
            elif parsed is None:
                kind = d.by_id[target].type
                options = [str(o) for o in (outcomes_of(kind) if kind else NAMED_OUTCOMES)]
                hint = _hint(word, options, d)
                can = ", ".join(options)
                where = f"step '{target}' is {_a(kind)} step and can be" if kind else "use one of"
                yield Finding(loc, f"unknown outcome '{word}' in '{entry}'{hint}; {where}: {can}")
            else:
                other = d.by_id[target]
                outcome = parsed[1]
                possible = OUTCOMES_BY_TYPE[other.type] if other.type else None
                if (
                    other.type is not None
                    and possible is not None
                    and outcome not in (Outcome.SUCCESS, Outcome.ALWAYS)
                    and outcome not in possible
                ):
                    can = ", ".join(outcomes_of(other.type))
                    yield Finding(
                        loc,
                        f"step '{target}' is {_a(other.type)} step and has no outcome "
                        f"'{outcome}'; it can be: {can}",
                    )
                step.deps.append(other.pos)


def _check_cycles(d: _Definition) -> Iterator[Finding]:
    """One finding per group of steps that need each other in a circle, showing one cycle."""
    for component in _components(d):
        if len(component) == 1:
            continue  # no cycle (a step needing itself is reported by _check_needs)
        members = set(component)
        start = component[0]
        path = _cycle_from(d, start, members)
        names = " -> ".join(d.steps[i].id for i in [*path, start])
        step = d.steps[start]
        closing = d.steps[path[-1]].id
        k = next((k for k, e in _needs(step) if e.partition(".")[0] == closing), 0)
        yield Finding(
            ("steps", step.index, "needs", k),
            f"needs form a cycle: {names}; remove one of these needs",
        )


def _cycle_from(d: _Definition, start: int, members: set[int]) -> list[int]:
    """Shortest path start -> ... -> last inside one component with last needing start,
    as positions [start, ..., last] (breadth-first over "is needed by" edges)."""
    after: dict[int, list[int]] = {i: [] for i in members}
    for i in members:
        for dep in d.steps[i].deps:
            if dep in members and dep != i:
                after[dep].append(i)
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
    return [start]  # pragma: no cover - a component of two or more always has a cycle


def _components(d: _Definition) -> list[list[int]]:
    """Strongly connected components of the needs graph (positions in ``d.steps``), each
    after every component it needs: Tarjan's algorithm, iterative, linear."""
    n = len(d.steps)
    order = [-1] * n
    low = [0] * n
    on_stack = [False] * n
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 0
    for root in range(n):
        if order[root] != -1:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                order[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack[node] = True
            deps = d.steps[node].deps
            recursed = False
            while child < len(deps):
                nxt = deps[child]
                child += 1
                if order[nxt] == -1:
                    work.append((node, child))
                    work.append((nxt, 0))
                    recursed = True
                    break
                if on_stack[nxt]:
                    low[node] = min(low[node], order[nxt])
            if recursed:
                continue
            if low[node] == order[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack[top] = False
                    component.append(top)
                    if top == node:
                        break
                out.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out


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
            elif not d.upstream(plan, step):
                yield Finding(
                    where, f"step '{source}' is not upstream of '{step.id}': add it to needs"
                )
            else:
                yield from _saved_plan_fields(loc, raw, plan.raw, source)
        if step.type == StepType.NOTIFY and raw.get("channel") is None and not d.notify_channel:
            yield Finding(
                (*loc, "channel"),
                "'channel' is required: this workflow's notify is a list of run-end messages, "
                "which sets no default channel"
                if d.notify_runs
                else "'channel' is required: set it here or notify.channel for the whole workflow",
            )
        if step.type == StepType.WORKFLOW and raw.get("workflow") == d.id:
            yield Finding((*loc, "workflow"), "a workflow step cannot run its own workflow")
        yield from _fields_that_do_not_apply(loc, step.type, raw)


# Fields every step has that some step types would silently ignore (docs/steps/workflow.md,
# docs/reference/workflow-yaml.md): such a step runs no job, so nothing times it out, retries it
# or places it. Refused, so a value written in the file is never one no step sees. A value
# equal to the default (retries: 0, retry_delay: 0) changes nothing and stays valid.
_NOT_APPLYING: dict[StepType, dict[str, str]] = {
    StepType.WORKFLOW: {
        "timeout": "the child run has its own workflow timeout: set timeout in the child workflow",
        "retries": "a child run is not retried: retry the step by hand, or give the child's "
        "steps retries",
        "retry_delay": "a child run is not retried",
        "agent": "the child's steps choose their own agents",
    },
    StepType.CONDITION: {
        "timeout": "a condition is evaluated at once on the server",
        "retries": "a condition is evaluated once; handle its failure with needs: [ID.failed]",
        "retry_delay": "a condition is evaluated once",
        "agent": "a condition is evaluated on the server, by no agent",
    },
    StepType.APPROVAL: {
        "retries": "an answer is final; a rejection is handled with needs: [ID.rejected]",
        "retry_delay": "an answer is final",
        "agent": "an approval is answered by people, on the server",
    },
}


def _fields_that_do_not_apply(
    loc: tuple[str | int, ...], kind: StepType | None, raw: dict[str, Any]
) -> Iterator[Finding]:
    if kind is None:
        return  # an unknown type is reported at steps[i].type
    for name, why in _NOT_APPLYING.get(kind, {}).items():
        value = raw.get(name)
        if value is None or value in (0, "0", "0s", {}):
            continue
        yield Finding(
            (*loc, name), f"{name} does not apply to {_a(kind)} step ({why}); remove it here"
        )


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


def _generated_names(triggers: list[Any]) -> dict[str, int]:
    """``<type>-<n>`` of each trigger without a key (n counts its type's keyless triggers,
    as ``triggers/sync.py`` names them), by name -> index."""
    counts: dict[str, int] = {}
    out: dict[str, int] = {}
    for t, trigger in enumerate(triggers):
        if isinstance(trigger, dict) and not trigger.get("key") and "type" in trigger:
            kind = str(trigger["type"])
            counts[kind] = counts.get(kind, 0) + 1
            out[f"{kind}-{counts[kind]}"] = t
    return out


def _check_triggers(d: _Definition) -> Iterator[Finding]:
    params = _params(d)
    declared = ", ".join(d.params) or "none"
    keys: dict[str, int] = {}
    generated = _generated_names(d.triggers)
    for t, trigger in enumerate(d.triggers):
        if not isinstance(trigger, dict):
            continue
        loc = ("triggers", t)
        key = trigger.get("key")
        if isinstance(key, str):
            if key in keys:
                yield Finding(
                    (*loc, "key"),
                    f"key '{key}' is also the key of triggers[{keys[key]}]: a key names one "
                    "trigger (and its URL); choose another",
                )
            elif key in generated:
                yield Finding(
                    (*loc, "key"),
                    f"key '{key}' is the name triggers[{generated[key]}] gets without a key: "
                    "choose another, or give that trigger a key too",
                )
            keys.setdefault(key, t)
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
