"""The one template renderer: sandboxed Jinja2, strict about undefined names.

Untrusted data (webhook payloads, incident labels, git messages) is only ever a *value* in the
context, never template source: templates come from workflow definitions alone. Rendering runs
in ``ImmutableSandboxedEnvironment`` so a template cannot mutate the context or reach
interpreter internals, with the bounds of ``opsflow.spec.sandbox`` on what one render may
build and spend, and ``StrictUndefined`` so a missing name is an error that names it, never a
silent empty string. Values written into text use JSON's spellings (``true``, ``null``).

Any exception raised while rendering, not only Jinja's own (``{{ 1/0 }}``), becomes one
``TemplateError`` naming the field: the caller fails the step being rendered with it and
nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import nodes as jn

from opsflow.errors import TemplateError
from opsflow.spec.output_text import FALSE_WORDS, TRUE_WORDS, plain
from opsflow.spec.sandbox import BoundedEnvironment, LimitExceeded, budget, check_value
from opsflow.words import counted

# Names a template may start from (ARCHITECTURE.md §2).
CONTEXT_ROOTS = frozenset(
    {"params", "trigger", "incident", "git", "nodes", "execution", "workflow", "secrets"}
)

# The fixed fields of the context's objects (the runtime builds exactly these), so a typo
# such as ``execution.urll`` is refused when the workflow is validated, not when it runs.
FIELDS: dict[str, frozenset[str]] = {
    "execution": frozenset(
        {"id", "started_by", "trigger_type", "created_at", "test_run", "url", "api_url"}
    ),
    "workflow": frozenset({"id", "name", "version"}),
    # What a git or incident trigger records (opsflow.triggers.git / .incident build them).
    "git": frozenset(
        {
            "provider",
            "repository",
            "event",
            "ref",
            "branch",
            "tag",
            "commit",
            "before",
            "message",
            "author",
            "pusher",
            "changed_files",
            "truncated",
            "compare_url",
            "url",
        }
    ),
    "incident": frozenset(
        {
            "id",
            "title",
            "status",
            "severity",
            "labels",
            "annotations",
            "starts_at",
            "ends_at",
            "fingerprint",
            "source",
            "generator_url",
            "external_url",
            "receiver",
            "group_key",
        }
    ),
}
NODE_FIELDS = frozenset({"status", "output", "error"})


def _kind(value: Any) -> str:
    """The word for a value's kind in messages people read: never a Python class name."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, (list, tuple)):
        return "list"
    if value is None:
        return "null"
    return "value"


class _Undefined(jinja2.StrictUndefined):
    """``StrictUndefined`` whose words name what is missing and where it was looked for by
    kind (a mapping and the keys it has, a text, a list), not by Python class
    (``'opsflow.spec.output_text.OutputMap object' has no attribute 'out'``)."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        name, obj = self._undefined_name, self._undefined_obj
        if self._undefined_hint or obj is jinja2.utils.missing:
            return str(super()._undefined_message)
        if isinstance(obj, Mapping):
            keys = sorted(str(key) for key in obj)
            has = ", ".join(f"'{key}'" for key in keys[:10]) + (", ..." if len(keys) > 10 else "")
            where = f"a mapping that has {has}" if keys else "an empty mapping"
            return f"undefined name '{name}': no '{name}' in {where}"
        if not isinstance(name, str):
            return f"undefined name [{name!r}]: a {_kind(obj)} has no element {name!r}"
        return f"undefined name '{name}': a {_kind(obj)} has no attribute '{name}'"


_ENV = BoundedEnvironment(
    undefined=_Undefined,
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
    """Parse template source; raises ``jinja2.TemplateSyntaxError`` on bad syntax.

    The common shape, text around ``{{ a.b['c'] }}`` paths, is read directly into the tree
    Jinja2 would build (its parser costs about a millisecond per template, which adds up to
    seconds in a workflow of thousands of steps); anything else goes to Jinja2.
    """
    return _simple_tree(source) or _ENV.parse(source)


_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_PART = rf"\.{_IDENT}|\[(?:'[^'\\]*'|\"[^\"\\]*\"|[0-9]+)\]"
_SIMPLE = re.compile(rf"\{{\{{[ ]*({_IDENT}(?:{_PART})*)[ ]*\}}\}}")
_NAME = re.compile(_IDENT)
_PART_RE = re.compile(_PART)
# Words Jinja2 reads as constants or operators, never as names: left to its parser.
_NOT_NAMES = frozenset(
    {"true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if"}
)


def _simple_tree(source: str) -> jn.Template | None:
    """The tree of a template made only of text (without braces) and ``{{ path }}``."""
    nodes: list[jn.Expr] = []
    pos = 0
    for match in _SIMPLE.finditer(source):
        text = source[pos : match.start()]
        if "{" in text:
            return None
        if text:
            nodes.append(jn.TemplateData(text))
        path = _path_node(match.group(1))
        if path is None:
            return None
        nodes.append(path)
        pos = match.end()
    tail = source[pos:]
    if pos == 0 or "{" in tail:
        return None
    if tail:
        nodes.append(jn.TemplateData(tail))
    return jn.Template([jn.Output(nodes)])


def _path_node(path: str) -> jn.Expr | None:
    """``a.b['c'][0]`` as Jinja2's Name/Getattr/Getitem nodes; None for a constant word."""
    name = _NAME.match(path)
    if name is None or name.group(0) in _NOT_NAMES:
        return None
    node: jn.Expr = jn.Name(name.group(0), "load")
    for match in _PART_RE.finditer(path, name.end()):
        part = match.group(0)
        if part.startswith("."):
            node = jn.Getattr(node, part[1:], "load")
        else:
            inner = part[1:-1]
            key: str | int = inner[1:-1] if inner[0] in "'\"" else int(inner)
            node = jn.Getitem(node, jn.Const(key), "load")
    return node


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


def secret_problem(source: str, *, allowed: bool, place: str | None = None) -> str | None:
    """Why ``secrets.*`` may not be used as ``source`` uses it, or None when it may;
    ``place`` names where ``source`` is when that is not a step's field (``"a run-end
    message"``), so the message does not read as if that place were one of the allowed ones.

    Templates see a secret as a placeholder that only becomes the value in the copy of a job
    handed to its agent. So a secret may appear only where its whole text is written out, in a
    field whose value reaches a job (``allowed``): compared, tested, filtered or read anywhere
    else (a condition, an approval message) it would be the placeholder, a silent wrong answer.
    """
    if "secrets" not in source:
        return None
    for dotted, whole in _secret_uses(parse(source), value=False):
        if not allowed:
            here = f"here, in {place}" if place else "here"
            return (
                f"'{dotted}' cannot be used {here}: secrets are only filled in for the jobs "
                "that use them (a step's script env, http url/headers/body/json, terraform "
                "vars/env, ansible extra_vars/env, or a notify step's message/title), never in "
                "conditions, approval messages, run-end messages (the workflow's notify), "
                "workflow outputs, for_each lists or params"
            )
        if not whole:
            return (
                f"'{dotted}' can only be written out whole, as {{{{ secrets.NAME }}}}: a secret "
                "cannot be compared, tested, filtered or stored in a variable, because the "
                "template sees a placeholder, not its value"
            )
    return None


def _secret_uses(node: jn.Node, *, value: bool) -> Iterator[tuple[str, bool]]:
    """(dotted path, written out whole) of every reference to ``secrets`` under ``node``."""
    if isinstance(node, (jn.Name, jn.Getattr, jn.Getitem)):
        parts = _path_of(node)
        if parts and parts[0] == "secrets":
            yield ".".join(parts), value and len(parts) == 2 and _static_path(node)
            return
    for child in node.iter_child_nodes():
        if isinstance(node, jn.Output):
            child_value = True
        elif isinstance(node, jn.Concat):
            child_value = value
        elif isinstance(node, jn.CondExpr):
            child_value = value and child is not node.test
        else:
            child_value = False
        yield from _secret_uses(child, value=child_value)


def _static_path(node: jn.Node) -> bool:
    """A path of names and constant keys only (``secrets['A']``, not ``secrets[x]``)."""
    while isinstance(node, (jn.Getattr, jn.Getitem)):
        if isinstance(node, jn.Getitem) and not isinstance(node.arg, jn.Const):
            return False
        node = node.node
    return isinstance(node, jn.Name)


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


def _failure(exc: Exception, source: str, context: Mapping[str, Any]) -> str:
    """The words for an exception raised while evaluating ``source``."""
    if isinstance(exc, jinja2.UndefinedError):
        missing = _missing_name(source, context)
        return f"undefined name '{missing}'" if missing else str(exc)
    if isinstance(exc, LimitExceeded):
        return exc.message
    if isinstance(exc, TemplateError):
        return exc.message
    if isinstance(exc, jinja2.TemplateError):
        return f"{exc}"
    if isinstance(exc, RecursionError):
        return "the template recurses too deeply"
    if isinstance(exc, TypeError):
        hint = _text_and_number_hint(str(exc))
        if hint:
            return hint
    detail = str(exc) or type(exc).__name__
    return f"{detail} ({type(exc).__name__})"


_COMPARED = re.compile(r"'([<>]=?)' not supported between instances of '(\w+)' and '(\w+)'")
_TEXT_TYPES = frozenset({"str", "OutputText"})
_NUMBER_TYPES = frozenset({"int", "float"})


def _text_and_number_hint(detail: str) -> str | None:
    """The words for comparing text with a number (``nodes.x.output.count > 3``): outputs
    are text, so the fix is to convert them; None for any other TypeError."""
    match = _COMPARED.search(detail)
    if match is None:
        return None
    operator, left, right = match.groups()
    if not ({left, right} & _TEXT_TYPES and {left, right} & _NUMBER_TYPES):
        return None
    return (
        f"cannot compare text with a number using '{operator}' (step outputs are text): "
        f"convert the text with | int or | float, e.g. "
        f"{{{{ nodes.x.output.count | int {operator} 3 }}}}"
    )


def render(source: str, context: Mapping[str, Any], *, where: str = "") -> str:
    """Render one template string into text of at most ``sandbox.MAX_TEXT`` characters.

    Raises TemplateError, prefixed with ``where`` (the field), for any failure: a missing name
    (named), a syntax error, a bound of the sandbox, or any exception the expression raised.
    """
    if not is_template(source):
        return source
    try:
        with budget():
            return _compile(source).render(dict(context))
    except Exception as exc:  # every failure of the template is the step's, never the caller's
        prefix = f"{where}: " if where else ""
        message = _failure(exc, source, context)
        raise TemplateError(f"{prefix}{message} in template {source!r}") from exc


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


def truth(value: Any) -> bool:
    """A condition's answer from the value its ``if`` produced.

    Step outputs are text, so text is read by words, case-insensitively: ``true``/``yes``/
    ``on``/``1`` and ``false``/``no``/``off``/``0``/empty/``none``/``null``. Booleans are
    themselves, ``None`` and empty lists or mappings are false, the numbers 0 and 1 are false
    and true. Anything else raises ValueError saying why: a condition never guesses.
    """
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)):
        if value in (0, 1):
            return bool(value)
        raise ValueError(f"the number {value!r} is neither 0 nor 1; compare it (e.g. > 0)")
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise ValueError(
            f"the text {shown!r} is not a truth word "
            "(true/yes/on/1 or false/no/off/0/empty); compare it instead (e.g. == 'ready')"
        )
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        if not value:
            return False
        raise ValueError(
            f"a {type(value).__name__} with {counted(len(value), 'item')} is not a truth value; "
            "test it instead (e.g. | length > 0)"
        )
    raise ValueError(f"a {type(value).__name__} is not a truth value")


def evaluate_value(source: str, context: Mapping[str, Any], *, where: str) -> Any:
    """A value from a template: a single ``{{ expr }}`` evaluated natively (a list stays a
    list), anything else rendered to text. Raises TemplateError prefixed with ``where``."""
    expr = _strip_braces(source)
    if not expr:
        return render(source, context, where=where)
    try:
        with budget():
            value = _ENV.compile_expression(expr, undefined_to_none=False)(**dict(context))
            if isinstance(value, jinja2.Undefined):
                str(value)  # StrictUndefined raises here; caught below
            check_value(value)
    except Exception as exc:  # the template fails, never the reconcile around it
        message = _failure(exc, source, context)
        raise TemplateError(f"{where}: {message} in template {source!r}") from exc
    return plain(value)  # stored (a for_each list): never the context's own types


def evaluate_condition(source: str, context: Mapping[str, Any]) -> ConditionResult:
    """Evaluate a condition's ``if``: a single ``{{ expr }}`` is evaluated natively, anything
    else is rendered; either way the answer follows ``truth``. Raises TemplateError naming
    the value when there is no clear answer, or for any failure of the expression."""
    reads: dict[str, Any] = {}
    for ref in references(source):
        found, value = resolve(ref.parts, context)
        reads[ref.dotted] = plain(value) if found else "<undefined>"
    expr = _strip_braces(source)
    if expr:
        try:
            with budget():
                value = _ENV.compile_expression(expr, undefined_to_none=False)(**dict(context))
                if isinstance(value, jinja2.Undefined):
                    bool(value)  # StrictUndefined raises here, naming nothing; caught below
                check_value(value)
        except Exception as exc:  # the condition fails, never the reconcile around it
            message = _failure(exc, source, context)
            raise TemplateError(f"if: {message} in condition {source!r}") from exc
    else:
        value = render(source, context, where="if")
    try:
        return ConditionResult(source, truth(value), reads)
    except ValueError as exc:
        raise TemplateError(f"if: condition {source!r} has no clear answer: {exc}") from exc
