"""Compile a validated workflow into the engine's graph (``opsflow.engine.model.Graph``).

The engine sees only what decides the DAG's course: ids, types, edges, join, retry policy and
timeouts in seconds. Everything a step does stays in the definition, for the executors.
"""

from __future__ import annotations

from opsflow.engine.model import Edge, Graph, StepNode
from opsflow.spec.checks import parse_need
from opsflow.spec.models import ApprovalStep, StepBase, Workflow
from opsflow.status import StepType


def _edge(entry: str) -> Edge:
    parsed = parse_need(entry)
    if parsed is None:  # the loader refuses these; a Workflow built by hand may still hold one
        raise ValueError(f"need {entry!r} names no known outcome")
    return Edge(parsed[0], parsed[1])


def _timeout(step: StepBase) -> float | None:
    # An approval with timeout 0 waits for people forever: the engine reads that as no timeout.
    if isinstance(step, ApprovalStep) and step.timeout == 0:
        return None
    return step.timeout


def to_graph(workflow: Workflow) -> Graph:
    """The engine graph of ``workflow`` (which must come from the loader, so it is acyclic)."""
    nodes = tuple(
        StepNode(
            id=step.id,
            type=StepType(step.type),
            needs=tuple(_edge(entry) for entry in step.needs),
            join=step.join,
            retries=step.retries,
            retry_delay=step.retry_delay,
            timeout=_timeout(step),
            allow_skip=step.allow_skip,
            plan_from=getattr(step, "plan_from", None),
        )
        for step in workflow.steps
    )
    return Graph(steps=nodes, timeout=workflow.timeout)
