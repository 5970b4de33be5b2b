"""The shape of a graph: a stable topological order, handlers, what lies downstream of a step."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from opsflow.engine.model import Graph, StepNode
from opsflow.status import Outcome

_FAILURE_EDGES = frozenset({Outcome.FAILED, Outcome.ALWAYS})
_REJECTION_EDGES = frozenset({Outcome.REJECTED, Outcome.ALWAYS})


@dataclass(frozen=True)
class Shape:
    """Facts about a graph that every decision needs; computed once per graph object."""

    order: tuple[str, ...]
    nodes: dict[str, StepNode]
    failure_handlers: dict[str, tuple[str, ...]]  # step -> steps with <step>.failed/.always
    rejection_handlers: dict[str, tuple[str, ...]]  # step -> steps with <step>.rejected/.always
    index: dict[str, int]  # step -> its place in ``order``
    dependents: dict[str, tuple[str, ...]]  # step -> the steps that need it (by any edge)
    sources: dict[str, tuple[str, ...]]  # step -> the steps it needs (each once)
    # Whether any decision may set a due time: a workflow or step timeout, or a retry delay.
    wakes: bool


# Keyed by id() and holding the graph itself, so an entry is only used for that very object;
# the runtime keeps one Graph per execution, which makes repeated decisions cheap.
_SHAPES: dict[int, tuple[Graph, Shape]] = {}
_SHAPES_KEPT = 256


def shape_of(graph: Graph) -> Shape:
    """The graph's ``Shape`` (memoized; a pure function of the graph)."""
    hit = _SHAPES.get(id(graph))
    if hit is not None and hit[0] is graph:
        return hit[1]
    order = topological_order(graph)

    def handlers(kinds: frozenset[Outcome]) -> dict[str, tuple[str, ...]]:
        found: dict[str, list[str]] = {}
        for node in graph.steps:
            for source in dict.fromkeys(e.step for e in node.needs if e.outcome in kinds):
                found.setdefault(source, []).append(node.id)
        return {source: tuple(ids) for source, ids in found.items()}

    sources = {node.id: tuple(dict.fromkeys(e.step for e in node.needs)) for node in graph.steps}
    dependents: dict[str, list[str]] = {node.id: [] for node in graph.steps}
    for sid in order:
        for source in sources[sid]:
            dependents[source].append(sid)
    shape = Shape(
        order=order,
        nodes={node.id: node for node in graph.steps},
        failure_handlers=handlers(_FAILURE_EDGES),
        rejection_handlers=handlers(_REJECTION_EDGES),
        index={sid: i for i, sid in enumerate(order)},
        dependents={sid: tuple(ids) for sid, ids in dependents.items()},
        sources=sources,
        wakes=(graph.timeout is not None and graph.timeout > 0)
        or any(
            (node.timeout is not None and node.timeout > 0)
            or (node.retries > 0 and node.retry_delay > 0)
            for node in graph.steps
        ),
    )
    if len(_SHAPES) >= _SHAPES_KEPT:
        _SHAPES.clear()  # one atomic step: safe when threads decide at once
    _SHAPES[id(graph)] = (graph, shape)
    return shape


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
