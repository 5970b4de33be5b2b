"""Compile a validated workflow into the engine's graph (``opsflow.engine.model.Graph``).

The engine sees only what decides the DAG's course: ids, types, edges, join, retry policy,
timeouts in seconds, and where a step's jobs run (for a placement timeout's reason).
Everything a step does stays in the definition, for the executors.
"""

from __future__ import annotations

from opsflow.engine.model import Edge, FanOut, Graph, StepNode
from opsflow.spec.checks import parse_need
from opsflow.spec.fields import AgentSelector
from opsflow.spec.models import ApprovalStep, Step, StepBase, Workflow
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


def _placement(
    workflow: Workflow, step: StepBase
) -> tuple[str, tuple[tuple[str, str], ...], float | None]:
    """Pool, labels and placement timeout: the step's ``agent`` over the workflow's (the same
    merge as `opsflow.runtime.context.agent_placement`)."""
    base, own = workflow.agent or AgentSelector(), step.agent or AgentSelector()
    pool = own.pool or base.pool or "default"
    labels = {**base.labels, **own.labels}
    timeout = own.placement_timeout or base.placement_timeout
    return pool, tuple(sorted((str(k), str(v)) for k, v in labels.items())), timeout


def _node(workflow: Workflow, step: Step) -> StepNode:
    pool, labels, placement_timeout = _placement(workflow, step)
    return StepNode(
        id=step.id,
        type=StepType(step.type),
        needs=tuple(_edge(entry) for entry in step.needs),
        join=step.join,
        retries=step.retries,
        retry_delay=step.retry_delay,
        timeout=_timeout(step),
        allow_skip=step.allow_skip,
        plan_from=getattr(step, "plan_from", None),
        pool=pool,
        labels=labels,
        placement_timeout=placement_timeout,
        fan_out=_fan_out(step),
    )


def _fan_out(step: StepBase) -> FanOut | None:
    if step.for_each is None and step.matrix is None:
        return None
    return FanOut(
        max_parallel=step.max_parallel, fail_fast=step.fail_fast, min_success=step.min_success
    )


def to_graph(workflow: Workflow) -> Graph:
    """The engine graph of ``workflow`` (which must come from the loader, so it is acyclic)."""
    return Graph(
        steps=tuple(_node(workflow, step) for step in workflow.steps), timeout=workflow.timeout
    )
