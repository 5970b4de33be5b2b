"""Fan-out: one step run once per item of a list (``for_each``) or per combination (``matrix``).

A step with ``for_each`` or ``matrix`` runs as many jobs as its list has items, each with its
own attempts, retries and lease; templates of the step read ``item``, ``index`` and (for a
matrix) ``matrix.<key>``. The list is worked out once, when the step becomes ready
(``items_from_value`` on the rendered ``for_each``, ``matrix_items`` for a matrix), and
recorded with the execution, so a restarted server or a person's retry never works out a
different one. Only steps that run on agents fan out; approvals, conditions and workflow
steps are refused (docs/concepts/fan-out.md).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field, RootModel, field_validator

# The most items one step may fan out to (docs/concepts/fan-out.md): a longer list fails the
# step with a message naming the count. Split bigger work into runs that trigger each other.
MAX_ITEMS = 1_000

# Names the templates of a fanned-out step may read besides the usual roots.
FAN_OUT_ROOTS = frozenset({"item", "index", "matrix"})

_MATRIX_EXTRAS = ("include", "exclude")


class FanOutError(ValueError):
    """The list to fan out over is not usable; the message says why and how to fix it."""


class Matrix(RootModel[dict[str, Any]]):
    """Keys each mapping to a list of values (or a template that renders to one); the items
    are every combination. ``exclude`` removes combinations matching all of an entry's keys;
    ``include`` adds entries as items of their own (after the product, in order)."""

    root: dict[str, Any] = Field(
        json_schema_extra={
            "additionalProperties": {"anyOf": [{"type": "array"}, {"type": "string"}]},
            "properties": {
                "include": {"type": "array", "items": {"type": "object"}},
                "exclude": {"type": "array", "items": {"type": "object"}},
            },
        },
    )

    @field_validator("root")
    @classmethod
    def _shape(cls, value: dict[str, Any]) -> dict[str, Any]:
        dims = [k for k in value if k not in _MATRIX_EXTRAS]
        if not dims and not value.get("include"):
            raise ValueError(
                "a matrix needs at least one key with a list of values, e.g. "
                "{region: [eu, us], tier: [api, worker]}"
            )
        for key in dims:
            if not isinstance(value[key], (list, str)):
                raise ValueError(
                    f"matrix key {key!r} must be a list of values (or a template that renders "
                    "to one)"
                )
        for extra in _MATRIX_EXTRAS:
            entries = value.get(extra, [])
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                raise ValueError(f"matrix {extra} must be a list of maps, e.g. [{{region: eu}}]")
        return value


def items_from_value(value: Any, *, where: str = "for_each") -> list[Any]:
    """The items of a rendered ``for_each``: a list as it is; text holding a JSON list parsed;
    other text split into its non-blank lines (each stripped). Raises ``FanOutError`` for
    anything else, and for more than ``MAX_ITEMS`` items."""
    items: list[Any]
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, str):
        text = value.strip()
        parsed: Any = None
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
        if isinstance(parsed, list):
            items = parsed
        else:
            items = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        raise FanOutError(
            f"{where} gave {type(value).__name__} {value!r}; it must give a list (a JSON list "
            "or lines of text)"
        )
    return _bounded(items, where)


def _bounded(items: list[Any], where: str) -> list[Any]:
    if len(items) > MAX_ITEMS:
        raise FanOutError(
            f"{where} gave {len(items)} items; a step may fan out to at most {MAX_ITEMS}: "
            "split the list, or let runs trigger each other"
        )
    return items


def matrix_items(dims: Mapping[str, Sequence[Any]], extras: Mapping[str, Any]) -> list[Any]:
    """Every combination of ``dims`` (keys in alphabetical order, the last varying fastest:
    stored definitions do not keep key order on PostgreSQL), without
    those matching an ``exclude`` entry, then each ``include`` entry as its own item. Each
    item is a map ``{key: value}``. Raises ``FanOutError`` past ``MAX_ITEMS``."""
    keys = sorted(dims)
    total = 1
    for key in keys:
        total *= len(dims[key])
        if total > MAX_ITEMS * 10:
            break
    if keys and total > MAX_ITEMS * 10:
        raise _too_many(total)
    combos = [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(dims[k] for k in keys))
    ]
    if not keys:
        combos = []
    excludes = [dict(e) for e in extras.get("exclude") or []]
    combos = [
        c for c in combos if not any(all(c.get(k) == v for k, v in e.items()) for e in excludes)
    ]
    combos += [dict(e) for e in extras.get("include") or []]
    if len(combos) > MAX_ITEMS:
        raise _too_many(len(combos))
    return combos


def _too_many(count: int) -> FanOutError:
    return FanOutError(
        f"matrix gives {count} combinations; a step may fan out to at most {MAX_ITEMS}: "
        "drop keys or values, or exclude combinations"
    )


def split_matrix(matrix: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A matrix's value keys and its ``include``/``exclude`` entries, apart."""
    dims = {k: v for k, v in matrix.items() if k not in _MATRIX_EXTRAS}
    extras = {k: v for k, v in matrix.items() if k in _MATRIX_EXTRAS}
    return dims, extras
