"""Read workflow YAML into plain JSON-like data, remembering where every node came from.

PyYAML composes the document into nodes that carry their marks; we build the data from those
nodes ourselves instead of using its constructor, which lets us:

- record the line and column of every path (``steps[2].needs[0]``) and of every key;
- report duplicate keys, which PyYAML silently collapses;
- keep mapping keys as written (``on:`` stays the text "on", not true), so the data is always
  JSON-compatible;
- refuse recursive aliases and alias bombs instead of looping or exhausting memory.

Plain scalars are resolved by the YAML 1.2 core schema (the spec's section 10.3.2), which the
web UI's YAML library uses too, not by PyYAML's YAML 1.1 rules: ``no``, ``yes``, ``on``,
``off``, ``y``, ``n`` and dates stay text; only ``true``/``false`` (any of three casings) are
booleans, ``null``/``~``/empty is null, ``0o755`` and ``0x1F`` are octal and hex. Every plain
scalar read as a number, boolean or null is remembered with its text as written
(``SourceMap.plain``), so the loader can give a text field exactly what the file says.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, cast

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from opsflow.spec.checks import steps_limit_finding
from opsflow.spec.findings import Finding, Loc, Position
from opsflow.spec.models import MAX_STEPS

MAX_NODES = 100_000  # a workflow is a few hundred nodes; more means an alias bomb
MAX_DEPTH = 64

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null")}

# The YAML 1.2 core schema's tag resolution, as the spec (and the `yaml` npm package) words it.
CORE_SCHEMA: list[tuple[str, str, str]] = [
    ("null", r"null|Null|NULL|~|", "nN~"),
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    (
        "float",
        r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
        r"|[-+]?(\.inf|\.Inf|\.INF)|\.nan|\.NaN|\.NAN",
        "-+.0123456789",
    ),
]
LEADING_ZERO = re.compile(r"[-+]?0[0-9]+")


class CoreLoader(yaml.SafeLoader):
    """PyYAML's reader, parser and composer with YAML 1.2 core tag resolution (plus ``<<``
    merge keys, which the UI's library offers as an option)."""


class CoreDumper(yaml.SafeDumper):
    """Writes YAML that both YAML 1.1 and 1.2 readers read back unchanged: a string either
    schema would take for something else (``no``, ``1e3``, ``0o7``) is quoted."""


def _install_resolvers() -> None:
    merge = ("merge", r"<<", "<")
    CoreLoader.yaml_implicit_resolvers = {}
    for name, pattern, first in [*CORE_SCHEMA, merge]:
        compiled = re.compile(f"^(?:{pattern})$")
        starts: list[str | None] = [*first, ""] if name == "null" else list(first)
        CoreLoader.add_implicit_resolver(_TAG + name, compiled, starts)
    for name, pattern, first in CORE_SCHEMA:
        starts = [*first, ""] if name == "null" else list(first)
        CoreDumper.add_implicit_resolver(_TAG + name, re.compile(f"^(?:{pattern})$"), starts)


_install_resolvers()


def _event_loader() -> type[Any]:
    """libyaml's scanner and parser, when PyYAML was built with it (five times faster on big
    files), under PyYAML's own composer with ``CoreLoader``'s resolution, so the nodes are the
    same. libyaml's own composer is not used: it builds the whole document in one C call that
    holds the GIL, stalling every other thread of the server for as long as it takes."""
    c_parser = getattr(getattr(yaml, "_yaml", None), "CParser", None)
    if c_parser is None:
        return CoreLoader

    class EventLoader(c_parser, Composer, Resolver):  # type: ignore[misc, valid-type]
        yaml_implicit_resolvers = CoreLoader.yaml_implicit_resolvers
        yaml_path_resolvers = CoreLoader.yaml_path_resolvers

        def __init__(self, stream: str) -> None:
            cast(Any, super()).__init__(stream)  # libyaml's parser, first in the order
            Composer.__init__(self)
            Resolver.__init__(self)

        get_single_node = Composer.get_single_node
        check_node = Composer.check_node
        get_node = Composer.get_node
        compose_document = Composer.compose_document
        compose_node = Composer.compose_node

    return EventLoader


_LOADER = _event_loader()
_ITEM_EVENTS = (yaml.ScalarEvent, yaml.AliasEvent)


def dump_yaml(data: Any) -> str:
    """``data`` as YAML text that reads back as the same data under YAML 1.2 and 1.1 alike."""
    return yaml.dump(data, Dumper=CoreDumper, sort_keys=False, allow_unicode=True)


_CORE_PATTERNS = {name: re.compile(f"(?:{pattern})") for name, pattern, _ in CORE_SCHEMA}


def core_value(tag: str, text: str) -> Any:
    """The value of a scalar of ``tag`` under the core schema; ValueError when ``text`` is not
    of that kind (an explicit ``!!int maybe``)."""
    kind = tag.removeprefix(_TAG)
    if kind in _CORE_PATTERNS and not _CORE_PATTERNS[kind].fullmatch(text):
        raise ValueError(f"{text!r} is not {kind}")
    if kind == "null":
        return None
    if kind == "bool":
        return text.lower() == "true"
    if kind == "int":
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)
    if kind == "float":
        lowered = text.lower()
        if lowered.endswith(".inf"):
            return -math.inf if text.startswith("-") else math.inf
        if lowered == ".nan":
            return math.nan
        return float(text)
    return text


@dataclass
class SourceMap:
    """Where each path of the document is, for pointing problems at lines."""

    values: dict[Loc, Position] = field(default_factory=dict)
    keys: dict[Loc, Position] = field(default_factory=dict)
    plain: dict[Loc, str] = field(default_factory=dict)
    """The text as written of each plain scalar read as a number, boolean or null."""

    def position(self, loc: Loc, *, key: bool = False) -> Position | None:
        """Position of ``loc``; of its nearest existing parent when it is missing."""
        if key and loc in self.keys:
            return self.keys[loc]
        while True:
            if loc in self.values:
                return self.values[loc]
            if not loc:
                return None
            loc = loc[:-1]


@dataclass
class ParsedYaml:
    data: Any
    source: SourceMap
    findings: list[Finding]


class _Abort(Exception):
    """The document cannot be read further; the finding says why."""


def _pos(mark: Any) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def read_yaml(text: str) -> ParsedYaml:
    """Parse ``text``; syntax errors and unreadable values become findings, never exceptions."""
    source = SourceMap()
    try:
        # PyYAML's reader checks every character up front, so even building it may fail.
        CoreLoader(text).dispose()
        loader = _LOADER(text)
    except yaml.YAMLError as exc:
        return ParsedYaml(None, source, [_reader_finding(exc, text)])
    too_deep = _too_deep(text)
    if too_deep is not None:
        loader.dispose()
        return ParsedYaml(None, source, [too_deep])
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        return ParsedYaml(None, source, [_syntax_finding(_python_error(text, exc))])
    except yaml.YAMLError as exc:  # ReaderError: a character YAML does not allow
        return ParsedYaml(None, source, [_reader_finding(exc, text)])
    except RecursionError:
        return ParsedYaml(None, source, [Finding((), "the YAML is nested too deeply")])
    finally:
        loader.dispose()
    if node is None:
        return ParsedYaml(
            None,
            source,
            [
                Finding(
                    (),
                    "the file is empty: a workflow needs an id and steps",
                    position=Position(1, 1),
                )
            ],
        )
    builder = _Builder(loader, source)
    try:
        data = builder.build(node, (), 0)
    except _Abort:
        data = None
    return ParsedYaml(data, source, builder.findings)


def _too_deep(text: str) -> Finding | None:
    """A finding when collections nest deeper than MAX_DEPTH, or ``steps`` holds more than
    ``MAX_STEPS`` entries. PyYAML's composer recurses per level, so a hostile document could
    exhaust the stack; its event parser does not, so we measure with it first. It also stops
    at the step limit, so a huge definition is refused without being read whole."""
    depth = 0
    expect_key = True  # at depth 1: the next event is a key of the top-level mapping
    steps_at: Position | None = None  # where the key `steps` was, while reading its items
    in_steps = False
    count = 0
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            starts = isinstance(event, yaml.CollectionStartEvent)
            if in_steps and depth == 2 and (starts or isinstance(event, _ITEM_EVENTS)):
                count += 1
                if count > MAX_STEPS:
                    return steps_limit_finding(count, steps_at)
            if depth == 1 and (starts or isinstance(event, _ITEM_EVENTS)):
                if expect_key:
                    is_steps = isinstance(event, yaml.ScalarEvent) and event.value == "steps"
                    steps_at = _pos(event.start_mark) if is_steps else None
                else:
                    in_steps = steps_at is not None and isinstance(event, yaml.SequenceStartEvent)
                expect_key = not expect_key
            if starts:
                depth += 1
                if depth > MAX_DEPTH:
                    return Finding(
                        (),
                        f"the YAML is nested more than {MAX_DEPTH} levels deep",
                        position=_pos(event.start_mark),
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
                if depth == 1:
                    in_steps = False
    except yaml.MarkedYAMLError as exc:
        # libyaml stops at its own nesting limit (1,000 levels) while scanning ahead, before
        # the events above reach MAX_DEPTH; composing it again would exhaust the stack.
        if "maximum nesting depth" in str(exc.problem):
            mark = exc.problem_mark or exc.context_mark
            return Finding(
                (),
                f"the YAML is nested more than {MAX_DEPTH} levels deep",
                position=_pos(mark) if mark else None,
            )
        return None  # composing reports it, with its place
    except yaml.YAMLError:
        return None  # composing reports it, with its place
    return None


def _python_error(text: str, exc: yaml.MarkedYAMLError) -> yaml.MarkedYAMLError:
    """The same syntax error in the words of PyYAML's own parser (libyaml words it otherwise);
    only a broken file pays for reading it twice."""
    if _LOADER is CoreLoader:
        return exc
    loader = CoreLoader(text)
    try:
        loader.get_single_node()
    except yaml.MarkedYAMLError as again:
        return again
    except RecursionError:  # PyYAML's composer recurses per level: keep libyaml's words
        return exc
    finally:
        loader.dispose()
    return exc


def _unsupported(tag: str) -> str:
    shown = "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag
    return f"unsupported YAML tag {shown}: write a plain value"


def _syntax_finding(exc: yaml.MarkedYAMLError) -> Finding:
    mark = exc.problem_mark or exc.context_mark
    what = exc.problem or "invalid YAML"
    if exc.context and "single document" in exc.context:
        what = "the file holds more than one YAML document: put one workflow per file"
    elif exc.context:
        what = f"{what} ({exc.context})"
    if "mapping values are not allowed" in what:
        what += ": a value holding ': ' must be quoted, or written as a block (|)"
    return Finding((), f"YAML syntax error: {what}", position=_pos(mark) if mark else None)


def _reader_finding(exc: yaml.YAMLError, text: str) -> Finding:
    offset = getattr(exc, "position", None)
    position = None
    if isinstance(offset, int):
        before = text[:offset]
        line = before.count("\n") + 1
        position = Position(line, offset - (before.rfind("\n") + 1) + 1)
    reason = str(exc).splitlines()[0] if str(exc) else "unreadable text"
    return Finding((), f"YAML cannot hold this text: {reason}", position=position)


class _Builder:
    def __init__(self, loader: Any, source: SourceMap) -> None:
        self.loader = loader
        self.source = source
        self.findings: list[Finding] = []
        self.count = 0
        self.open: set[int] = set()  # nodes being built: meeting one again is a recursive alias

    def build(self, node: Node, loc: Loc, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            self.findings.append(
                Finding((), f"the document expands to more than {MAX_NODES} values (aliases?)")
            )
            raise _Abort
        self.source.values[loc] = _pos(node.start_mark)
        if depth > MAX_DEPTH:
            self.findings.append(Finding(loc, f"nested more than {MAX_DEPTH} levels deep"))
            raise _Abort
        if isinstance(node, ScalarNode):
            return self._scalar(node, loc)
        if id(node) in self.open:
            self.findings.append(Finding(loc, "a YAML alias refers to itself: remove the loop"))
            return None
        self.open.add(id(node))
        try:
            # An odd tag (!!set, !!omap, !custom) is reported, and the value read as plain
            # data so nothing else is reported twice for the same place.
            if node.tag not in (_TAG + "seq", _TAG + "map"):
                self.findings.append(Finding(loc, _unsupported(node.tag)))
            if isinstance(node, SequenceNode):
                return [
                    self.build(child, (*loc, i), depth + 1) for i, child in enumerate(node.value)
                ]
            out: dict[str, Any] = {}
            if isinstance(node, MappingNode):
                self._mapping(node, loc, depth, out)
            return out
        finally:
            self.open.discard(id(node))

    def _mapping(self, node: MappingNode, loc: Loc, depth: int, out: dict[str, Any]) -> None:
        # Merge keys (<<: *base) first, so the mapping's own keys override them, as in YAML.
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                self._merge(value_node, loc, depth, out)
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                continue
            if not isinstance(key_node, ScalarNode):
                self.findings.append(
                    Finding(
                        loc, "a mapping key must be plain text", position=_pos(key_node.start_mark)
                    )
                )
                continue
            key = str(key_node.value)
            key_pos = _pos(key_node.start_mark)
            if key in first_line:
                self.findings.append(
                    Finding(
                        (*loc, key),
                        f"duplicate key '{key}' (first on line {first_line[key]}): keep one",
                        position=key_pos,
                    )
                )
            first_line.setdefault(key, key_pos.line)
            self.source.keys[(*loc, key)] = key_pos
            out[key] = self.build(value_node, (*loc, key), depth + 1)

    def _merge(self, value: Node, loc: Loc, depth: int, out: dict[str, Any]) -> None:
        sources = value.value if isinstance(value, SequenceNode) else [value]
        for src in sources:
            if not isinstance(src, MappingNode) or id(src) in self.open:
                self.findings.append(Finding(loc, "'<<' must merge a mapping (or a list of them)"))
                continue
            self.open.add(id(src))
            try:
                self._mapping(src, loc, depth, out)
            finally:
                self.open.discard(id(src))

    def _scalar(self, node: ScalarNode, loc: Loc) -> Any:
        if node.tag not in _SCALAR_TAGS:
            self.findings.append(Finding(loc, _unsupported(node.tag)))
            return str(node.value)
        text = str(node.value)
        if node.tag == _TAG + "str":
            return text
        try:
            value = core_value(node.tag, text)
        except ValueError:
            # An explicit tag on text that is not of its kind (!!int maybe).
            tag = node.tag.removeprefix(_TAG)
            self.findings.append(Finding(loc, f"cannot read {text!r} as {tag}"))
            return text
        if not node.style:  # plain: None from PyYAML's parser, "" from libyaml's
            self.source.plain[loc] = text
        return value
