"""The one template renderer: sandboxed Jinja2, strict about undefined names.

Untrusted data (webhook payloads, incident labels, git messages) is only ever a *value* in the
context, never template source: templates come from workflow definitions alone. Rendering runs
in ``ImmutableSandboxedEnvironment`` so a template cannot mutate the context or reach
interpreter internals, and ``StrictUndefined`` so a missing name is an error that names it,
never a silent empty string.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import nodes as jn
from jinja2.sandbox import ImmutableSandboxedEnvironment

from opsflow.errors import TemplateError

# Names a template may start from (ARCHITECTURE.md §2).
CONTEXT_ROOTS = frozenset(
    {"params", "trigger", "incident", "git", "nodes", "execution", "workflow", "secrets"}
)

# The fixed fields of the context's objects (the runtime builds exactly these), so a typo
# such as ``execution.urll`` is refused when the workflow is validated, not when it runs.
FIELDS: dict[str, frozenset[str]] = {
    "execution": frozenset({"id", "started_by", "trigger_type", "created_at", "test_run", "url"}),
    "workflow": frozenset({"id", "name", "version"}),
}
NODE_FIELDS = frozenset({"status", "output", "error"})

_ENV = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)


def is_template(value: str) -> bool:
    """True when the string holds Jinja2 markup and needs rendering."""
    return "{{" in value or "{%" in value


@lru_cache(maxsize=4096)
def _compile(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


@lru_cache(maxsize=4096)
def parse(source: str) -> jn.Template:
    """Parse template source; raises ``jinja2.TemplateSyntaxError`` on bad syntax."""
    return _ENV.parse(source)


@dataclass(frozen=True)
class Reference:
    """A dotted path a template reads, e.g. ``nodes.plan.output.changes`` -> parts."""

    parts: tuple[str, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


def references(source: str) -> list[Reference]:
    """Every context path a template reads, longest static form (``a.b['c'].d`` -> a.b.c.d).

    Names bound inside the template (``{% set %}``, loop variables) are left out.
    """
    tree = parse(source)
    bound = {n.name for n in tree.find_all(jn.Name) if n.ctx in ("store", "param")}
    seen: dict[tuple[str, ...], None] = {}
    for node in _outermost_paths(tree):
        parts = _path_of(node)
        if parts and parts[0] not in bound:
            seen.setdefault(parts, None)
    return [Reference(p) for p in seen]


def _outermost_paths(node: jn.Node, inside_path: bool = False) -> Iterator[jn.Node]:
    is_path = isinstance(node, (jn.Getattr, jn.Getitem, jn.Name))
    if is_path and not inside_path and _path_of(node):
        yield node
    for child in node.iter_child_nodes():
        # Getattr/Getitem children that continue the same path are not separate references,
        # but a Getitem's subscript expression (x[y]) is.
        continues = (
            is_path
            and isinstance(child, (jn.Getattr, jn.Getitem, jn.Name))
            and (isinstance(node, (jn.Getattr, jn.Getitem)) and child is node.node)
        )
        yield from _outermost_paths(
            child, inside_path=continues or (is_path and inside_path and continues)
        )


def _path_of(node: jn.Node) -> tuple[str, ...]:
    if isinstance(node, jn.Name):
        return (node.name,) if node.ctx == "load" else ()
    if isinstance(node, jn.Getattr):
        base = _path_of(node.node)
        return (*base, node.attr) if base else ()
    if isinstance(node, jn.Getitem):
        base = _path_of(node.node)
        if not base:
            return ()
        if isinstance(node.arg, jn.Const) and isinstance(node.arg.value, (str, int)):
            return (*base, str(node.arg.value))
        return base
    return ()


def resolve(parts: tuple[str, ...], context: Mapping[str, Any]) -> tuple[bool, Any]:
    """Follow a dotted path through mappings and sequences; (found, value)."""
    cur: Any = context
    for part in parts:
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        elif isinstance(cur, (list, tuple)) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return False, None
    return True, cur


def _missing_name(source: str, context: Mapping[str, Any]) -> str | None:
    for ref in references(source):
        for i in range(1, len(ref.parts) + 1):
            found, _ = resolve(ref.parts[:i], context)
            if not found:
                return ".".join(ref.parts[:i])
    return None


def render(source: str, context: Mapping[str, Any], *, where: str = "") -> str:
    """Render one template string; a missing name raises TemplateError naming it."""
    if not is_template(source):
        return source
    try:
        return _compile(source).render(dict(context))
    except jinja2.UndefinedError as exc:
        missing = _missing_name(source, context)
        what = f"undefined name '{missing}'" if missing else str(exc)
        prefix = f"{where}: " if where else ""
        raise TemplateError(f"{prefix}{what} in template {source!r}") from exc
    except jinja2.TemplateError as exc:
        prefix = f"{where}: " if where else ""
        raise TemplateError(f"{prefix}{exc} in template {source!r}") from exc


def render_value(value: Any, context: Mapping[str, Any], *, where: str = "") -> Any:
    """Render every string inside a JSON-like structure; other values pass through."""
    if isinstance(value, str):
        return render(value, context, where=where)
    if isinstance(value, Mapping):
        return {
            k: render_value(v, context, where=f"{where}.{k}" if where else str(k))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [render_value(v, context, where=f"{where}[{i}]") for i, v in enumerate(value)]
    return value


@dataclass(frozen=True)
class ConditionResult:
    """A condition's verdict with what it read, for the engine log."""

    expression: str
    result: bool
    reads: dict[str, Any]


def _strip_braces(source: str) -> str:
    text = source.strip()
    if text.startswith("{{") and text.endswith("}}") and text.count("{{") == 1:
        return text[2:-2].strip()
    return ""


def evaluate_condition(source: str, context: Mapping[str, Any]) -> ConditionResult:
    """Evaluate a condition's ``if``: a single ``{{ expr }}`` is evaluated natively,
    anything else is rendered and read as a boolean word (true/false/yes/no/1/0)."""
    reads: dict[str, Any] = {}
    for ref in references(source):
        found, value = resolve(ref.parts, context)
        reads[ref.dotted] = value if found else "<undefined>"
    expr = _strip_braces(source)
    try:
        if expr:
            value = _ENV.compile_expression(expr, undefined_to_none=False)(**dict(context))
            if isinstance(value, jinja2.Undefined):
                bool(value)  # StrictUndefined raises here, naming nothing; caught below
            return ConditionResult(source, bool(value), reads)
    except jinja2.UndefinedError as exc:
        missing = _missing_name(source, context)
        raise TemplateError(
            f"undefined name '{missing}' in condition {source!r}" if missing else str(exc)
        ) from exc
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{exc} in condition {source!r}") from exc
    text = render(source, context).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return ConditionResult(source, True, reads)
    if text in ("false", "no", "0", "off", "", "none"):
        return ConditionResult(source, False, reads)
    raise TemplateError(f"condition {source!r} rendered {text!r}, which is not true or false")
