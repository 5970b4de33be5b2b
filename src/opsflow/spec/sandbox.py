"""The sandbox templates render in: Jinja2's immutable sandbox with bounds on one render.

A render runs inside a reconcile, under the execution's row lock. Moving it to another thread
does not help against a costly template: one big-integer operation (``10 ** 10 ** 7``) holds
the GIL for seconds and the whole server stops answering. So the operations themselves are
bounded, before they run, and every value a template builds is checked:

- an integer has at most ``MAX_INT_BITS`` bits (``**`` and ``*`` are refused beforehand);
- a string, and the rendered value, has at most ``MAX_TEXT`` characters (repetition,
  padding, ``replace``, ``join``, ``%`` and ``format`` widths are refused beforehand);
- a list, tuple or mapping has at most ``MAX_ITEMS`` items (``range`` too);
- loops, macro calls, filter calls and the writing of values to text are counted, and a render
  that has used more than ``MAX_CPU_SECONDS`` of its thread's CPU time stops.

Going past a bound raises ``LimitExceeded`` naming it; the renderer turns it into the step's
``TemplateError``. No process is started per render.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MappingView
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

import jinja2
from jinja2 import nodes as jn
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

from opsflow.spec.output_text import OutputText

MAX_INT_BITS = 4096
MAX_TEXT = 1 << 20  # characters (1 MiB of ASCII)
MAX_ITEMS = 100_000
MAX_CPU_SECONDS = 1.0


class LimitExceeded(Exception):
    """A template went past one of the sandbox's bounds; the message names the bound."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class _Budget:
    deadline: float  # time.thread_time() value
    ticks: int = 0


_budget: ContextVar[_Budget | None] = ContextVar("opsflow_template_budget", default=None)


@contextmanager
def budget() -> Iterator[None]:
    """Count one render's work against ``MAX_CPU_SECONDS`` of this thread's CPU time.

    Nested uses share the outermost budget: every field of one step renders on one budget.
    """
    if _budget.get() is not None:
        yield
        return
    token = _budget.set(_Budget(time.thread_time() + MAX_CPU_SECONDS))
    try:
        yield
    finally:
        _budget.reset(token)


def tick(cost: int = 1) -> None:
    """Charge work to the current render; raises LimitExceeded once its time is spent."""
    current = _budget.get()
    if current is None:
        return
    before = current.ticks
    current.ticks += cost
    if (before >> 8) != (current.ticks >> 8) and time.thread_time() > current.deadline:
        raise LimitExceeded(
            f"the template used more than {MAX_CPU_SECONDS:g} s of CPU time "
            "(too many loop iterations or too much data): simplify it"
        )


# -- sizes ------------------------------------------------------------------------------------


def _too_long(what: str, size: int, limit: int, unit: str) -> LimitExceeded:
    return LimitExceeded(f"{what} would have {size:,} {unit}, more than the limit of {limit:,}")


def check_value(value: Any) -> Any:
    """``value`` itself when it is within the bounds; raises LimitExceeded otherwise."""
    if isinstance(value, (str, bytes)):
        if len(value) > MAX_TEXT:
            raise _too_long("a text", len(value), MAX_TEXT, "characters")
    elif isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise _too_long("an integer", value.bit_length(), MAX_INT_BITS, "bits")
    elif isinstance(value, (list, tuple, dict, set, frozenset)) and len(value) > MAX_ITEMS:
        raise _too_long("a list", len(value), MAX_ITEMS, "items")
    return value


def _check_text(size: int, what: str = "a text") -> None:
    if size > MAX_TEXT:
        raise _too_long(what, size, MAX_TEXT, "characters")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _check_power(left: Any, right: Any) -> None:
    base, exponent = _int(left), _int(right)
    if base is None or exponent is None or exponent <= 1 or abs(base) <= 1:
        return
    at_least = (base.bit_length() - 1) * exponent + 1
    if at_least > MAX_INT_BITS:
        raise _too_long("an integer", at_least, MAX_INT_BITS, "bits")


def _check_product(left: Any, right: Any) -> None:
    a, b = _int(left), _int(right)
    if a is not None and b is not None:
        bits = a.bit_length() + b.bit_length() - 1
        if a and b and bits > MAX_INT_BITS:
            raise _too_long("an integer", bits, MAX_INT_BITS, "bits")
        return
    sequence, times = (left, b) if b is not None else (right, a)
    if times is None or times <= 0 or not hasattr(sequence, "__len__"):
        return
    size = len(sequence) * times
    if isinstance(sequence, (str, bytes)):
        _check_text(size)
    elif size > MAX_ITEMS:
        raise _too_long("a list", size, MAX_ITEMS, "items")


_PERCENT_SPEC = re.compile(
    r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[diouxXeEfFgGcrsab%]"
)


def _check_percent(fmt: str, args: Any) -> None:
    """Widths and precisions of a ``%`` format, and the text its arguments become."""
    total = len(fmt)
    for match in _PERCENT_SPEC.finditer(fmt):
        for number in match.groups():
            if number == "*":
                raise LimitExceeded("'*' widths are not allowed in % formats: write the number")
            total += int(number) if number else 0
    if isinstance(args, Mapping):
        items = list(args.values())
    elif isinstance(args, tuple):
        items = list(args)
    else:
        items = [args]
    total += sum(text_weight(item) for item in items)
    _check_text(total)


_WIDTH = re.compile(r"^(?:.?[<>=^])?[+\- ]?z?#?0?(\d*)[_,]?(?:\.(\d+))?")


class _BoundedFormatter(SandboxedFormatter):
    """``str.format`` with each field's width and the text it produces bounded."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        match = _WIDTH.match(format_spec)
        if match:
            _check_text(sum(int(n) for n in match.groups() if n), "a formatted field")
        _check_text(text_weight(value), "a formatted field")
        tick()
        return super().format_field(value, format_spec)


def _iterate(values: Iterable[Any], what: str) -> list[Any]:
    items = list(itertools.islice(values, MAX_ITEMS + 1))
    if len(items) > MAX_ITEMS:
        raise LimitExceeded(f"{what} has more than {MAX_ITEMS:,} items")
    tick(len(items) // 64 + 1)
    return items


def bounded_join(separator: str, values: Iterable[Any]) -> str:
    """``separator.join`` of the values as text, refused before it grows past MAX_TEXT."""
    parts = [to_text(v) for v in _iterate(values, "a joined list")]
    _check_text(sum(map(len, parts)) + len(separator) * max(len(parts) - 1, 0))
    return separator.join(parts)


# -- text -------------------------------------------------------------------------------------


def text_weight(value: Any) -> int:
    """About how many characters ``value`` becomes as text, counted only up to past MAX_TEXT
    (a list that repeats one big string many times is big as text, though short as a list)."""
    if isinstance(value, (str, bytes)):
        return len(value)
    if not isinstance(value, (list, tuple, set, frozenset, Mapping, MappingView, Namespace)):
        return 8
    total = 0
    stack: list[Any] = [value]
    while stack and total <= MAX_TEXT:
        item = stack.pop()
        tick()
        if isinstance(item, (str, bytes)):
            total += len(item) + 2
        elif isinstance(item, Mapping):
            total += 2 + len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, Namespace):
            stack.append(dict(item._Namespace__attrs))
        elif isinstance(item, (list, tuple, set, frozenset, MappingView)):
            total += 2 + len(item)
            stack.extend(cast(Iterable[Any], item))
        else:
            total += 8
    return total


class _Encoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, Namespace):
            return dict(o._Namespace__attrs)
        if isinstance(o, Mapping):
            return dict(o)
        if isinstance(o, Iterable) and not isinstance(o, (str, bytes)):
            return _iterate(o, "a list written as text")
        return str(o)


_ENCODER = _Encoder(ensure_ascii=False, check_circular=False, allow_nan=True)


def to_text(value: Any) -> str:
    """A value as text, with JSON's spellings: ``true``, ``false``, ``null``, ``[1, 2]``,
    ``{"a": "b"}``; strings as they are. Raises LimitExceeded past ``MAX_TEXT``."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, int):
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple, set, frozenset, Mapping, MappingView, Namespace)):
        return to_json(value)
    return str(check_value(str(value)))  # StrictUndefined raises here, naming the name


def to_json(value: Any) -> str:
    """``value`` as JSON text, written piece by piece and refused once past ``MAX_TEXT``."""
    parts: list[str] = []
    size = 0
    for chunk in _ENCODER.iterencode(value):
        size += len(chunk)
        _check_text(size)
        tick()
        parts.append(chunk)
    return "".join(parts)


# -- filters and globals ----------------------------------------------------------------------

# Filters that read their value as a structure, not as text: no need to weigh it first.
_STRUCTURE_FILTERS = frozenset(
    {
        "abs", "attr", "batch", "bool", "count", "d", "default", "dictsort", "first", "float",
        "groupby", "int", "items", "join", "last", "length", "list", "map", "max", "min",
        "random", "reject", "rejectattr", "reverse", "round", "select", "selectattr", "slice",
        "sort", "string", "sum", "tojson", "unique",
    }
)  # fmt: skip


def _sized_arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else None


def _precheck_filter(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    value = args[0] if args else None
    if name not in _STRUCTURE_FILTERS and not isinstance(value, (str, int, float, type(None))):
        _check_text(text_weight(value), f"the value given to '{name}'")
    if name in ("center", "indent"):
        width = _sized_arg(args, kwargs, 1, "width")
        text = value if isinstance(value, str) else ""
        lines = text.count("\n") + 1 if name == "indent" else 1
        if isinstance(width, str):
            _check_text(len(text) + len(width) * lines)
        elif isinstance(width, int):
            _check_text(len(text) + width * lines)
    elif name in ("batch", "slice"):
        count = _sized_arg(args, kwargs, 1, "linecount" if name == "batch" else "slices")
        if isinstance(count, int) and count > MAX_ITEMS:
            raise _too_long("a list", count, MAX_ITEMS, "items")
    elif name == "replace" and isinstance(value, str):
        old, new = _sized_arg(args, kwargs, 1, "old"), _sized_arg(args, kwargs, 2, "new")
        if isinstance(old, str) and isinstance(new, str):
            _check_text(_replaced_size(value, old, new))
    elif name == "wordwrap" and isinstance(value, str):
        wrap_width = _sized_arg(args, kwargs, 1, "width")
        wrapstring = _sized_arg(args, kwargs, 3, "wrapstring")
        lines = len(value) // max(wrap_width if isinstance(wrap_width, int) else 79, 1) + 1
        extra = len(wrapstring) if isinstance(wrapstring, str) else 1
        _check_text(len(value) + lines * extra)
    elif name == "format" and isinstance(value, str):
        _check_percent(value, args[1:] or dict(kwargs))


def _replaced_size(text: str, old: str, new: str) -> int:
    times = text.count(old) if old else len(text) + 1
    return len(text) + times * len(new)


@jinja2.pass_environment
def _bounded_sum(
    environment: jinja2.Environment, iterable: Iterable[Any], attribute: Any = None, start: Any = 0
) -> Any:
    total = start
    for item in _iterate(iterable, "a summed list"):
        value = _attribute(environment, item, attribute)
        growing = isinstance(total, (list, tuple)) and isinstance(value, (list, tuple))
        if growing and len(total) + len(value) > MAX_ITEMS:
            raise _too_long("a list", len(total) + len(value), MAX_ITEMS, "items")
        total = check_value(total + value)
    return total


def _attribute(environment: jinja2.Environment, item: Any, attribute: Any) -> Any:
    if attribute is None:
        return item
    for part in str(attribute).split("."):
        item = environment.getitem(item, int(part) if part.isdigit() else part)
    return item


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def bounded(*args: Any, **kwargs: Any) -> Any:
        tick()
        # Filters marked pass_context/pass_environment get that first; the value follows.
        passed = args and isinstance(args[0], (Context, EvalContext, jinja2.Environment))
        offset = 1 if passed else 0
        _precheck_filter(name, args[offset:], kwargs)
        return check_value(func(*args, **kwargs))

    for attr in ("jinja_pass_arg",):
        if hasattr(func, attr):
            setattr(bounded, attr, getattr(func, attr))
    bounded.__name__ = getattr(func, "__name__", name)
    return bounded


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    if n * max > MAX_ITEMS:
        raise _too_long("lipsum text", n * max, MAX_ITEMS, "words")
    from jinja2.utils import generate_lorem_ipsum

    return str(generate_lorem_ipsum(n=n, html=html, min=min, max=max))


# -- calls of methods -------------------------------------------------------------------------


def _precheck_method(obj: Any, args: tuple[Any, ...]) -> None:
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if isinstance(owner, (str, bytes)):
        first = args[0] if args else None
        if name in ("ljust", "rjust", "center", "zfill") and isinstance(first, int):
            _check_text(max(first, len(owner)))
        elif name == "expandtabs":
            size = first if isinstance(first, int) else 8
            tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
            _check_text(len(owner) + tabs * size)
        elif name == "replace" and len(args) >= 2 and isinstance(args[1], type(owner)):
            old, new = args[0], args[1]
            times = owner.count(old) if old else len(owner) + 1
            _check_text(len(owner) + times * len(new))
        elif name == "translate" and isinstance(first, Mapping):
            longest = max((len(v) for v in first.values() if isinstance(v, str)), default=1)
            _check_text(len(owner) * longest)
    elif isinstance(owner, int) and name == "to_bytes":
        length = args[0] if args else 1
        if isinstance(length, int):
            _check_text(length)


# -- the environment --------------------------------------------------------------------------


class _Rewriter(NodeTransformer):
    """Makes every loop iteration and macro call charge the budget, and ``~`` write its
    operands as bounded text (a call, so it is never folded with Python's ``str`` at compile
    time)."""

    def visit_For(self, node: jn.For) -> jn.Node:
        self.generic_visit(node)
        node.body.insert(0, _tick_statement())
        if node.test is not None:
            node.test = jn.And(_tick_call("tick_true"), node.test)
        return node

    def visit_Macro(self, node: jn.Macro) -> jn.Node:
        self.generic_visit(node)
        node.body.insert(0, _tick_statement())
        return node

    def visit_CallBlock(self, node: jn.CallBlock) -> jn.Node:
        self.generic_visit(node)
        node.body.insert(0, _tick_statement())
        return node

    def visit_Concat(self, node: jn.Concat) -> jn.Node:
        self.generic_visit(node)
        return jn.Call(
            jn.EnvironmentAttribute("concat_text"), [jn.Tuple(node.nodes, "load")], [], None, None
        )


class _CountingCodeGenerator(CodeGenerator):
    """Compiles templates rewritten by ``_Rewriter``."""

    def visit_Template(self, node: jn.Template, frame: Frame | None = None) -> None:
        super().visit_Template(_Rewriter().visit(node), frame)


def _tick_call(name: str) -> jn.Call:
    return jn.Call(jn.EnvironmentAttribute(name), [], [], None, None)


def _tick_statement() -> jn.ExprStmt:
    return jn.ExprStmt(_tick_call("tick"))


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """``ImmutableSandboxedEnvironment`` with the bounds of this module; values written to
    text use JSON's spellings (``to_text``); ``a.b`` on a mapping with the key ``b`` is that
    key's value, never a method of the mapping (``getattr``)."""

    code_generator_class = _CountingCodeGenerator
    intercepted_binops = frozenset({"**", "*", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_finalize, **options)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.filters["string"] = _bounded_filter("string", to_text)
        self.filters["join"] = _bounded_filter("join", _join_filter)
        self.filters["sum"] = _bounded_filter("sum", _bounded_sum)
        self.globals["lipsum"] = _lipsum
        # ``x is true`` / ``x is false`` read an output's text by its words, as ``x == true``.
        self.tests["true"] = _is_true
        self.tests["false"] = _is_false
        self.policies["json.dumps_function"] = _dumps

    @staticmethod
    def tick() -> None:
        tick()

    @staticmethod
    def tick_true() -> bool:
        tick()
        return True

    @staticmethod
    def concat_text(parts: tuple[Any, ...]) -> str:
        return bounded_join("", parts)

    def concat(self, parts: Iterable[Any]) -> str:
        """Join a render's (or a block's) output, refused once it passes MAX_TEXT."""
        out: list[str] = []
        size = 0
        for part in parts:
            size += len(part)
            _check_text(size, "the rendered value")
            out.append(part)
        return "".join(out)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        tick()
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_product(left, right)
        elif operator == "%" and isinstance(left, str):
            _check_percent(left, right)
        return check_value(self.binop_table[operator](left, right))

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``a.b``: for a mapping holding the key ``b``, its value, before any method of the
        same name (``nodes.each.output.items`` is the output ``items``, not ``dict.items``);
        otherwise Jinja2's sandboxed attribute, then item, lookup."""
        if isinstance(obj, Mapping):
            try:
                if attribute in obj:
                    return obj[attribute]
            except TypeError:  # an unhashable key type: no such key
                pass
        return super().getattr(obj, attribute)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        tick()
        _precheck_method(__obj, args)
        if getattr(__obj, "__name__", "") == "join" and isinstance(
            getattr(__obj, "__self__", None), str
        ):
            return bounded_join(__obj.__self__, args[0] if args else ())
        return check_value(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text: str = value.__self__
        is_map = value.__name__ == "format_map"
        formatter = _BoundedFormatter(self)

        def bounded(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs, args = args[0], ()
            return str(check_value(formatter.vformat(text, args, kwargs)))

        return bounded


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, OutputText) and value == True)  # noqa: E712


def _is_false(value: Any) -> bool:
    return value is False or (isinstance(value, OutputText) and value == False)  # noqa: E712


def _finalize(value: Any) -> Any:
    if isinstance(value, jinja2.Undefined):
        return value
    return to_text(value)


@jinja2.pass_environment
def _join_filter(
    environment: jinja2.Environment, value: Iterable[Any], d: str = "", attribute: Any = None
) -> str:
    """Jinja's ``join``, bounded, writing non-text items with JSON's spellings."""
    items = [_attribute(environment, v, attribute) for v in _iterate(value, "a joined list")]
    return bounded_join(str(d), items)


def _dumps(value: Any, **kwargs: Any) -> str:
    """``tojson``'s encoder: bounded, indented when asked."""
    if kwargs.get("indent"):
        _check_text(text_weight(value) * 2)
        return str(check_value(json.dumps(value, cls=_Encoder, ensure_ascii=False, **kwargs)))
    return to_json(value)
