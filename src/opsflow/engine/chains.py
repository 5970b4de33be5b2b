"""How deep runs may start runs: workflow triggers and workflow steps stop at a depth limit.

Pure. A path is the workflows from the first run to the one about to start, e.g.
``("a", "b", "a")``; its depth is the number of links (starts by another run). A loop of
workflows that trigger each other would run forever; the limit stops it, and the error names
the loop so the person reading it knows which trigger or step to change.
"""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_DEPTH_LIMIT = 10


def loop_in(path: Sequence[str]) -> list[str] | None:
    """The first loop of ``path`` (``a -> b -> a``), or None when no workflow repeats."""
    seen: dict[str, int] = {}
    for i, workflow in enumerate(path):
        if workflow in seen:
            return list(path[seen[workflow] : i + 1])
        seen[workflow] = i
    return None


def depth_problem(path: Sequence[str], limit: int) -> str | None:
    """Why the last workflow of ``path`` may not start (None when it may)."""
    if len(path) - 1 <= limit:
        return None
    loop = loop_in(path)
    shown = " -> ".join(path[: limit + 2])
    text = f"runs started by runs stop at depth {limit} (the server's OPSFLOW_CHAIN_DEPTH): {shown}"
    if loop is not None:
        text += (
            f"; the loop {' -> '.join(loop)} would never end: remove one of its workflow "
            "triggers or workflow steps, or give it a condition that stops"
        )
    return text
