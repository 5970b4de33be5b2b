"""Problems found while reading a definition, before they get their line and column.

Every check (YAML reading, the models, the checks across steps) reports a ``Finding`` with a
path into the document; the loader turns them all into located ``opsflow.errors.Problem`` at
the end, from one source map, so every message points the same way.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Sized
from dataclasses import dataclass

Loc = tuple[str | int, ...]

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Position:
    """1-based line and column in the YAML text."""

    line: int
    column: int


@dataclass(frozen=True)
class Finding:
    """One problem at ``loc``. ``at_key`` points at the key rather than its value (an unknown
    field); ``position`` is set when the place is known without a path (YAML syntax)."""

    loc: Loc
    msg: str
    at_key: bool = False
    position: Position | None = None


def format_loc(loc: Loc) -> str:
    """``('steps', 2, 'needs', 0)`` -> ``steps[2].needs[0]``; odd keys are quoted: ``["a.b"]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


def listing(names: Iterable[str], limit: int = 20) -> str:
    """``a, b, c``, or the first ``limit`` names and how many more: a message stays short
    however big the definition."""
    shown = list(itertools.islice(names, limit + 1))
    if len(shown) <= limit:
        return ", ".join(shown) or "none"
    total = len(names) if isinstance(names, Sized) else limit + 1
    return f"{', '.join(shown[:limit])} and {total - limit:,} more"


_LOC_PART = re.compile(r'\.?([A-Za-z0-9_-]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def parse_loc(text: str) -> Loc:
    """The inverse of `format_loc`: ``steps[2].needs[0]`` -> ``('steps', 2, 'needs', 0)``.

    Raises ValueError for text `format_loc` does not write."""
    parts: list[str | int] = []
    done = 0
    while done < len(text):
        match = _LOC_PART.match(text, done)
        if match is None or match.end() == done:
            raise ValueError(f"not a location: {text!r}")
        key, index, quoted = match.groups()
        parts.append(
            key if key is not None else int(index) if index is not None else json.loads(quoted)
        )
        done = match.end()
    return tuple(parts)
