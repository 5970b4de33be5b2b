"""Pydantic's validation errors, rewritten as findings a workflow author can act on.

Pydantic speaks about inputs and union members ("Input tag 'scrip' found using 'type' does not
match any of the expected tags"); authors need the field, what was wrong and what to write
instead ("unknown step type 'scrip'; use one of: script, http, ..."). This module is the one
place that translation happens.
"""

from __future__ import annotations

import difflib
import types
from dataclasses import replace
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from opsflow.spec.fields import FieldProblem
from opsflow.spec.findings import Finding, Loc
from opsflow.spec.models import Workflow
from opsflow.spec.notifications import NOTIFY_SHAPES
from opsflow.spec.ssh_step import HOSTS_SHAPES
from opsflow.spec.triggers import TriggerType
from opsflow.status import StepType
from opsflow.words import counted

# Top-level lists whose items are a union picked by ``type``: pydantic puts the chosen tag in
# the error's loc (steps, 2, 'script', 'run'), which is not a path in the document.
_TAGGED_LISTS: dict[str, list[str]] = {
    "steps": [t.value for t in StepType],
    "triggers": [t.value for t in TriggerType],
}

# Fields whose value is a union picked by the value's shape (``Discriminator``): pydantic puts
# the chosen branch's tag after the field (hosts, 'inventory', 'pattern'); the document has none.
_SHAPED_FIELDS: dict[str, frozenset[str]] = {"hosts": HOSTS_SHAPES, "notify": NOTIFY_SHAPES}

_EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
}


def findings_from_validation(exc: ValidationError, data: Any) -> list[Finding]:
    """One finding per pydantic error, with document paths and plain-language messages."""
    return [_finding(err, data) for err in exc.errors(include_url=False)]


def describe(value: Any) -> str:
    """A value as an author would name it in a message."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}" if len(value) < 60 else "a long text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _finding(err: ErrorDetails, data: Any) -> Finding:
    loc: Loc = tuple(err["loc"])
    if len(loc) > 2 and loc[0] in _TAGGED_LISTS and isinstance(loc[1], int):
        loc = (*loc[:2], *loc[3:])
    for index, part in enumerate(loc[:-1]):
        if isinstance(part, str) and loc[index + 1] in _SHAPED_FIELDS.get(part, ()):
            loc = (*loc[: index + 1], *loc[index + 2 :])
            break
    if loc and loc[-1] == "[key]":  # a mapping key itself is wrong: point at the key
        return replace(_translate(err, loc[:-1], data), at_key=True)
    return _translate(err, loc, data)


def _translate(err: ErrorDetails, loc: Loc, data: Any) -> Finding:
    kind = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    given = err.get("input")
    error = ctx.get("error")
    if isinstance(error, FieldProblem):
        return Finding((*loc, error.field, *error.at), str(error))
    if kind == "missing" and loc:
        return Finding(loc, f"'{loc[-1]}' is required")
    if kind == "extra_forbidden" and loc:
        return Finding(loc, _unknown_field(loc, data), at_key=True)
    if kind in ("union_tag_invalid", "union_tag_not_found") and loc and loc[0] in _TAGGED_LISTS:
        allowed = ", ".join(_TAGGED_LISTS[str(loc[0])])
        what = "step" if loc[0] == "steps" else "trigger"
        if kind == "union_tag_not_found":
            return Finding(
                (*loc, "type"), f"'type' is required: the {what} type, one of: {allowed}"
            )
        guess = _close(str(ctx.get("tag")), _TAGGED_LISTS[str(loc[0])])
        return Finding(
            (*loc, "type"), f"unknown {what} type {ctx.get('tag')!r}{guess}; use one of: {allowed}"
        )
    if kind in ("enum", "literal_error"):
        return Finding(loc, f"{describe(given)} is not allowed: use {ctx.get('expected')}")
    if kind == "value_error" and error is not None:
        return Finding(loc, str(error))
    if kind in _EXPECTED:
        return Finding(loc, f"expected {_EXPECTED[kind]}, got {describe(given)}")
    if kind == "too_short":
        if loc == ("steps",):
            return Finding(loc, "a workflow needs at least one step")
        return Finding(loc, f"needs at least {counted(int(ctx.get('min_length', 1)), 'item')}")
    if kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        return Finding(loc, f"must be at least {bound}, got {describe(given)}")
    if kind in ("less_than_equal", "less_than"):
        bound = ctx.get("le", ctx.get("lt"))
        return Finding(loc, f"must be at most {bound}, got {describe(given)}")
    msg = str(err["msg"])
    return Finding(loc, msg[:1].lower() + msg[1:])


def _close(word: str, options: list[str]) -> str:
    match = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _unknown_field(loc: Loc, data: Any) -> str:
    name = str(loc[-1])
    model = _model_at(loc[:-1], data)
    if model is None:
        return f"unknown field '{name}'"
    allowed = [f.alias or n for n, f in model.model_fields.items()]
    listed = ", ".join(allowed)
    return f"unknown field '{name}'{_close(name, allowed)}; allowed here: {listed}"


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _model_at(loc: Loc, data: Any) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``loc``, found by following the types."""
    tp: Any = Workflow
    for part in loc:
        tp = _pick(_unwrap(tp), data)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = {f.alias or n: f for n, f in tp.model_fields.items()}
            if part not in fields:
                return None
            tp = fields[str(part)].annotation
        elif get_origin(tp) is list:
            tp = get_args(tp)[0]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            return None
        data = _child(data, part)
    tp = _pick(_unwrap(tp), data)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _pick(tp: Any, data: Any) -> Any:
    """For a union chosen by ``type``, the member matching the data's ``type``; for a union
    chosen by shape (``notify``), the list member for a list."""
    if get_origin(tp) in (Union, types.UnionType) and isinstance(data, list):
        lists = [m for m in map(_unwrap, get_args(tp)) if get_origin(m) is list]
        return lists[0] if len(lists) == 1 else tp
    if get_origin(tp) not in (Union, types.UnionType) or not isinstance(data, dict):
        return tp
    for member in get_args(tp):
        if (
            isinstance(member, type)
            and issubclass(member, BaseModel)
            and "type" in member.model_fields
        ):
            literal = member.model_fields["type"].annotation
            if get_origin(literal) is Literal and data.get("type") in get_args(literal):
                return member
    return tp


def _child(data: Any, part: str | int) -> Any:
    if isinstance(data, dict) and isinstance(part, str):
        return data.get(part)
    if isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
        return data[part]
    return None
