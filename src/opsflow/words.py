"""How opsflow words a count in a message: "1 line", "2 lines", never "1 lines" or "line(s)";
and how a not-found message suggests the name that was probably meant.

At the root beside ``errors`` and ``status`` because every layer writes counts and names into
messages (engine, spec, runtime, steps, agent, store, API, CLI) and all should spell them alike.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``counted(1, "line")`` -> ``"1 line"``; ``counted(3, "line")`` -> ``"3 lines"``;
    ``plural`` for nouns that do not just take an "s" (``counted(2, "entry", "entries")``)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def did_you_mean(given: str, known: Iterable[str]) -> str:
    """``"; did you mean 'hello'?"`` when ``given`` is close to one or more ``known`` names
    (difflib's ratio, the closest three), else ``""``: the tail of a not-found message, so a
    typo costs one look instead of a listing."""
    close = difflib.get_close_matches(given, list(known), n=3, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(name) for name in close) + "?"
