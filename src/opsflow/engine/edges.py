"""When an edge of ``needs`` is met, still open, or dead; and which steps handle a failure.

A terminal step *produced* a set of outcomes; an edge is met when its outcome is in that set:

========================  =================================================================
the source ended          outcomes it produced (edges it meets)
========================  =================================================================
SUCCEEDED (job, child)    ``<id>``, ``.succeeded``, ``.always``
SUCCEEDED (condition)     gate TRUE: ``<id>``, ``.true``; FALSE: ``.false``; either way
                          ``.succeeded`` and ``.always`` (a condition that was evaluated ran)
APPROVED                  ``<id>``, ``.approved``, ``.always``
FAILED (any type)         ``.failed``, ``.always``
REJECTED                  ``.rejected``, ``.always``
SKIPPED by a user         ``<id>``, the type's own success (``.succeeded`` / ``.approved`` /
                          ``.true``) and ``.always``: downstream goes on as if it succeeded
SKIPPED by the engine     nothing
CANCELLED                 nothing
========================  =================================================================

An edge whose source is not terminal (pending, waiting, running) is *open*; a terminal source
that did not produce the edge's outcome makes the edge *dead*. ``join: all`` is ready when every
edge is met and dead as soon as one edge is dead; ``join: any`` is ready when one edge is met and
dead only when every edge is dead. A step without needs is ready at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from opsflow.engine.model import Edge, StepNode, StepState
from opsflow.status import Join, Outcome, StepStatus, StepType


class EdgeState(Enum):
    OPEN = "open"
    MET = "met"
    DEAD = "dead"


_ANY_RUN = frozenset({Outcome.ALWAYS})
_OWN_SUCCESS = {
    StepType.APPROVAL: Outcome.APPROVED,
    StepType.CONDITION: Outcome.TRUE,
}

# Outcomes whose edges mark a step as a handler: it may start while the execution is failing.
HANDLER_OUTCOMES = frozenset({Outcome.FAILED, Outcome.REJECTED, Outcome.ALWAYS})


def produced(node: StepNode, status: StepStatus, state: StepState) -> frozenset[Outcome]:
    """The outcomes a step in ``status`` produced (see the module table)."""
    if status == StepStatus.SUCCEEDED:
        if node.type == StepType.CONDITION:
            branch = Outcome.TRUE if state.gate_result == Outcome.TRUE else Outcome.FALSE
            extra = {Outcome.SUCCESS} if branch == Outcome.TRUE else set()
            return _ANY_RUN | {Outcome.SUCCEEDED, branch} | extra
        return _ANY_RUN | {Outcome.SUCCESS, Outcome.SUCCEEDED}
    if status == StepStatus.APPROVED:
        return _ANY_RUN | {Outcome.SUCCESS, Outcome.APPROVED}
    if status == StepStatus.FAILED:
        return _ANY_RUN | {Outcome.FAILED}
    if status == StepStatus.REJECTED:
        return _ANY_RUN | {Outcome.REJECTED}
    if status == StepStatus.SKIPPED and state.user_skipped:
        own = _OWN_SUCCESS.get(node.type, Outcome.SUCCEEDED)
        return _ANY_RUN | {Outcome.SUCCESS, own}
    return frozenset()


def edge_state(edge: Edge, source: StepNode, status: StepStatus, state: StepState) -> EdgeState:
    """Whether ``edge`` (whose source is ``source``, now in ``status``) is met, open or dead."""
    if not status.terminal:
        return EdgeState.OPEN
    return EdgeState.MET if edge.outcome in produced(source, status, state) else EdgeState.DEAD


def join_state(node: StepNode, states: Sequence[EdgeState]) -> EdgeState:
    """Combine the states of ``node.needs`` (in order) by its join: MET = ready, DEAD = never."""
    if not states:
        return EdgeState.MET
    if node.join == Join.ANY:
        if EdgeState.MET in states:
            return EdgeState.MET
        return EdgeState.DEAD if all(s == EdgeState.DEAD for s in states) else EdgeState.OPEN
    if EdgeState.DEAD in states:
        return EdgeState.DEAD
    return EdgeState.MET if all(s == EdgeState.MET for s in states) else EdgeState.OPEN


def is_handler(node: StepNode) -> bool:
    """A step whose needs include a ``.failed``, ``.rejected`` or ``.always`` edge."""
    return any(edge.outcome in HANDLER_OUTCOMES for edge in node.needs)
