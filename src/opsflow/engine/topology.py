"""The shape of a graph: a stable topological order and what lies downstream of a step."""

from __future__ import annotations

import heapq

from opsflow.engine.model import Graph


def topological_order(graph: Graph) -> tuple[str, ...]:
    """Step ids so that every step comes after all it needs; ties keep definition order.

    The graph is validated before it reaches the engine; a cycle or an unknown need here is a
    contract breach and raises ``ValueError`` naming the steps involved.
    """
    index = {node.id: i for i, node in enumerate(graph.steps)}
    if len(index) != len(graph.steps):
        raise ValueError("graph has duplicate step ids")
    waiting_on = {node.id: 0 for node in graph.steps}
    dependents: dict[str, list[str]] = {node.id: [] for node in graph.steps}
    for node in graph.steps:
        for source in {edge.step for edge in node.needs}:
            if source not in index:
                raise ValueError(f"step {node.id!r} needs unknown step {source!r}")
            waiting_on[node.id] += 1
            dependents[source].append(node.id)
    ready = [index[sid] for sid, count in waiting_on.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        sid = graph.steps[heapq.heappop(ready)].id
        order.append(sid)
        for dependent in dependents[sid]:
            waiting_on[dependent] -= 1
            if waiting_on[dependent] == 0:
                heapq.heappush(ready, index[dependent])
    if len(order) != len(graph.steps):
        stuck = sorted(sid for sid, count in waiting_on.items() if count > 0)
        raise ValueError(f"graph has a cycle through steps {', '.join(stuck)}")
    return tuple(order)


def downstream(graph: Graph, step: str) -> set[str]:
    """Every step that needs ``step``, directly or through others, by any kind of edge."""
    dependents: dict[str, list[str]] = {node.id: [] for node in graph.steps}
    for node in graph.steps:
        for edge in node.needs:
            dependents.setdefault(edge.step, []).append(node.id)
    if step not in dependents:
        raise ValueError(unknown_step_message(graph, step))
    found: set[str] = set()
    stack = list(dependents[step])
    while stack:
        sid = stack.pop()
        if sid not in found:
            found.add(sid)
            stack.extend(dependents[sid])
    return found


def unknown_step_message(graph: Graph, step: str) -> str:
    """The error for a step id the graph lacks, listing the ones it has."""
    known = ", ".join(node.id for node in graph.steps) or "none"
    return f"unknown step {step!r}; this workflow's steps are: {known}"
