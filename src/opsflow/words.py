"""How opsflow words a count in a message: "1 line", "2 lines", never "1 lines" or "line(s)".

At the root beside ``errors`` and ``status`` because every layer writes counts into messages
(engine, spec, runtime, steps, agent, API, CLI) and all should spell them alike.
"""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``counted(1, "line")`` -> ``"1 line"``; ``counted(3, "line")`` -> ``"3 lines"``;
    ``plural`` for nouns that do not just take an "s" (``counted(2, "entry", "entries")``)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
