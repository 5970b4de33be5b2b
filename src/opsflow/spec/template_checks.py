"""Template checks at load time: syntax, and that every name a template reads can exist.

A template may read the declared params, the outputs of steps upstream of it, and the other
context roots (``opsflow.spec.template.CONTEXT_ROOTS``). Reading a step that has not run yet
would fail at run time, maybe hours in; here it fails when the workflow is applied.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2.defaults import DEFAULT_NAMESPACE

from opsflow.spec.findings import Finding, Loc, listing
from opsflow.spec.models import SECRET_FIELDS, TEMPLATED_FIELDS
from opsflow.spec.template import (
    CONTEXT_ROOTS,
    FIELDS,
    NODE_FIELDS,
    is_template,
    parse,
    references,
    secret_problem,
)
from opsflow.status import StepType

# Names Jinja2 itself provides (range, dict, namespace, ...) and ``loop`` inside a for loop.
_JINJA_NAMES = frozenset(DEFAULT_NAMESPACE) | {"loop"}


def template_strings(loc: Loc, value: Any) -> Iterator[tuple[Loc, str]]:
    """Every string holding template markup inside ``value``, with its path."""
    if isinstance(value, str):
        if is_template(value):
            yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from template_strings((*loc, key), item)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from template_strings((*loc, i), item)


@dataclass(frozen=True)
class Scope:
    """What a template at one place may read."""

    step: str | None
    upstream: Container[str]
    known_steps: Collection[str]  # a dict or set: membership is asked once per reference
    declared_params: list[str]
    roots: frozenset[str] = CONTEXT_ROOTS
    dashed: Mapping[str, str] = field(default_factory=dict)  # 'roll' -> 'roll-back'
    # The fixed fields of the context's objects here (a run-end message reads more of
    # ``execution`` than a step may).
    fields: Mapping[str, frozenset[str]] = field(default_factory=lambda: FIELDS)

    @classmethod
    def for_trigger(cls, roots: frozenset[str]) -> Scope:
        """A trigger's params: set before any step runs, from the event and secrets."""
        return cls(None, frozenset(), [], [], roots)

    def check(
        self, loc: Loc, text: str, *, secrets: bool = False, place: str | None = None
    ) -> Iterator[Finding]:
        """Problems of the template ``text`` found at ``loc``; ``secrets``: whether the field
        reaches a job, the only place a secret may be written out; ``place``: what ``loc`` is
        when it is not a step's field (``"a run-end message"``), for the secrets message."""
        try:
            parse(text)
        except jinja2.TemplateSyntaxError as exc:
            where = f" (line {exc.lineno} of the template)" if "\n" in text.strip() else ""
            yield Finding(loc, f"template syntax error: {exc.message}{where}")
            return
        except jinja2.TemplateError as exc:
            yield Finding(loc, f"template error: {exc}")
            return
        for ref in references(text):
            problem = self._reference_problem(ref.parts)
            if problem:
                yield Finding(loc, problem)
        problem = secret_problem(text, allowed=secrets, place=place)
        if problem:
            yield Finding(loc, problem)

    def _reference_problem(self, parts: tuple[str, ...]) -> str | None:
        root = parts[0]
        if root in _JINJA_NAMES:
            return None
        if root not in self.roots:
            readable = ", ".join(sorted(self.roots))
            return f"unknown name '{root}' in template; templates here can read: {readable}"
        if root == "params" and len(parts) > 1 and parts[1] not in self.declared_params:
            declared = ", ".join(self.declared_params)
            if not declared:
                return f"undeclared param '{parts[1]}': declare it under params"
            return f"undeclared param '{parts[1]}'; declared params: {declared}"
        if root in self.fields and len(parts) > 1 and parts[1] not in self.fields[root]:
            known = ", ".join(sorted(self.fields[root]))
            return f"unknown field '{root}.{parts[1]}' in template; {root} has: {known}"
        if root == "nodes" and len(parts) > 1:
            problem = self._step_problem(parts[1])
            if problem is None and len(parts) > 2 and parts[2] not in NODE_FIELDS:
                known = ", ".join(sorted(NODE_FIELDS))
                return (
                    f"unknown field '{parts[2]}' of step '{parts[1]}' in template; "
                    f"a step has: {known} (outputs are under nodes.{parts[1]}.output)"
                )
            return problem
        return None

    def _step_problem(self, name: str) -> str | None:
        if name == self.step:
            return f"step '{name}' cannot read its own output"
        if name not in self.known_steps:
            dashed = self.dashed.get(name)
            hint = f" (for '{dashed}' write nodes['{dashed}'])" if dashed else ""
            return (
                f"unknown step '{name}' in template{hint}; known steps: {listing(self.known_steps)}"
            )
        if name not in self.upstream:
            return (
                f"step '{name}' is not upstream of '{self.step}', so its output may not exist "
                f"yet: add it to needs"
            )
        return None


def check_templates(loc: Loc, kind: StepType, raw: dict[str, Any], scope: Scope) -> list[Finding]:
    """Problems in the templated fields of one step (script bodies are never templates)."""
    out: list[Finding] = []
    for name in TEMPLATED_FIELDS[kind]:
        secrets = name in SECRET_FIELDS.get(kind, ())
        for where, text in template_strings((*loc, name), raw.get(name)):
            out.extend(scope.check(where, text, secrets=secrets))
    return out


# Fields run as shell code that are never templated (values reach them through ``env``), by
# step type. A ``{{ … }}`` there is left as written, which is almost always a mistake.
UNTEMPLATED_CODE_FIELDS: Mapping[str, str] = {
    StepType.SCRIPT.value: "run",
    StepType.SSH.value: "command",
}


def untemplated_markup(data: Any) -> list[Finding]:
    """Warnings, not errors: a ``run`` (script) or ``command`` (ssh) holding ``{{ … }}``,
    located at that field. Such a body is never templated by design (untrusted values must not
    become code), so the markup would reach the shell as written."""
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        return []
    out: list[Finding] = []
    for index, step in enumerate(data["steps"]):
        if not isinstance(step, dict):
            continue
        name = UNTEMPLATED_CODE_FIELDS.get(str(step.get("type")))
        body = step.get(name) if name else None
        if name and isinstance(body, str) and "{{" in body:
            out.append(
                Finding(
                    ("steps", index, name),
                    f"{name} is not templated: {{{{ … }}}} stays as written; pass values "
                    'through env: (e.g. env: {WHOM: "{{ params.whom }}"} and use $WHOM)',
                )
            )
    return out
