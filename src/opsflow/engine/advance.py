"""``advance``: ``decide``'s decision for news about a few steps, from those steps alone.

A job's end changes one step; ``decide`` looks at every step of the execution to work out what
follows, which makes each end cost as much as the execution is wide. ``advance`` takes only
part of the state (``Partial``): the steps with news, the steps that need them, and counts kept
for the whole execution (``Counts``: steps active, approvals waiting, steps failed; and for each
pending step how many of its needs' sources have not ended, ``needs_open``). From these it
returns the very decision ``decide`` would return on the whole state, action for action and in
the same order, or says that it cannot:

* ``Need(steps)``: it must also see these steps (the successors of a step that ended, or all
  sources of a step it skips, to name them in the reason); the caller adds them and asks again;
* ``None``: this decision needs the whole execution; the caller calls ``decide``. That is the
  case for a run that is not RUNNING or PAUSED, under a cancel or past its workflow timeout,
  with a FAILED or REJECTED step (what is halted depends on every failure and its handlers),
  when nothing would be active afterwards (the run ends, or skips what can never run), and
  when it would pause on approvals it does not all see (the reason names them).

Why it agrees with ``decide`` (the property test in ``tests/unit/engine/test_advance.py``
drives random graphs through both): after every decision on a run without failures, no
pending step is ready or dead (``decide`` started or skipped it). So the only pending steps that
may move are those with an edge from a step that ended in this decision; with ``join: all``
every earlier-ended source of theirs met its edge and with ``join: any`` none did, so the
count of sources not yet ended decides the rest. Steps with news settle exactly as in
``decide`` (``results.settle`` on the steps given). What ``decide`` would do for steps not
given is only what falls due with time (a timeout, a retry delay): the caller keeps its timer
no later than any due time it was ever told (``wake_at`` of a full decision, lowered by each
``advance``) and uses ``decide`` once that timer is due.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from opsflow.engine.draft import ACTIVE, Draft
from opsflow.engine.edges import EdgeState, is_handler
from opsflow.engine.model import DEFAULT_AGENT_LOST_LIMIT, Decision, ExecutionState, Graph, StepNode
from opsflow.engine.outcome import halting
from opsflow.engine.reducer import deadline_of, pause_or_resume, skip_reason
from opsflow.engine.results import settle
from opsflow.engine.topology import shape_of
from opsflow.status import ExecutionStatus, Join, StepStatus, StepType

_LIVE = frozenset({ExecutionStatus.RUNNING, ExecutionStatus.PAUSED})
_FAILED = frozenset({StepStatus.FAILED, StepStatus.REJECTED})


@dataclass(frozen=True)
class Counts:
    """Counts over every step of an execution, kept beside it so no decision has to scan."""

    active: int = 0  # steps RUNNING or WAITING
    approvals: int = 0  # approval steps among them (waiting for people)
    failed: int = 0  # steps FAILED or REJECTED

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.active + other.active,
            self.approvals + other.approvals,
            self.failed + other.failed,
        )

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            self.active - other.active,
            self.approvals - other.approvals,
            self.failed - other.failed,
        )


def count(graph: Graph, statuses: Mapping[str, StepStatus]) -> Counts:
    """The ``Counts`` of the steps in ``statuses`` (all of an execution's, or some)."""
    nodes = shape_of(graph).nodes
    active = approvals = failed = 0
    for sid, status in statuses.items():
        if status in ACTIVE:
            active += 1
            approvals += nodes[sid].type == StepType.APPROVAL
        elif status in _FAILED:
            failed += 1
    return Counts(active, approvals, failed)


def open_needs(node: StepNode, statuses: Mapping[str, StepStatus]) -> int:
    """How many of ``node``'s edges come from a step that has not ended (``statuses`` has
    every source of ``node``)."""
    return sum(1 for edge in node.needs if not statuses[edge.step].terminal)


def needs_open_of(graph: Graph, statuses: Mapping[str, StepStatus]) -> dict[str, int]:
    """``open_needs`` of every PENDING step, from the statuses of every step."""
    return {
        node.id: open_needs(node, statuses)
        for node in graph.steps
        if statuses[node.id] == StepStatus.PENDING
    }


def recount(
    graph: Graph,
    counts: Counts,
    needs_open: Mapping[str, int],
    was: Mapping[str, StepStatus],
    now: Mapping[str, StepStatus],
) -> tuple[Counts, dict[str, int]]:
    """The counts after some steps changed: ``was`` and ``now`` are the statuses of the same
    steps before and after (every step that changed is among them), ``counts`` and
    ``needs_open`` the counts before. Returns the new counts and ``needs_open`` of the steps
    in ``now`` that are PENDING (their sources that ended are among the steps given)."""
    after = counts - count(graph, was) + count(graph, now)
    ended = {sid for sid, status in now.items() if status.terminal and not was[sid].terminal}
    nodes = shape_of(graph).nodes
    still: dict[str, int] = {}
    for sid, status in now.items():
        if status != StepStatus.PENDING:
            continue
        node = nodes[sid]
        if was[sid] != StepStatus.PENDING:  # a person reset it: count afresh from what is given
            still[sid] = open_needs(node, now)
        else:
            still[sid] = needs_open[sid] - sum(1 for e in node.needs if e.step in ended)
    return after, still


@dataclass(frozen=True)
class Partial:
    """Some steps of an execution (``state.steps``) with the counts over all of them."""

    state: ExecutionState
    counts: Counts
    needs_open: Mapping[str, int]  # at least the PENDING steps in ``state.steps``


@dataclass(frozen=True)
class Need:
    """``advance`` must also see these steps."""

    steps: frozenset[str]


def advance(
    graph: Graph,
    part: Partial,
    now: float,
    *,
    agent_lost_limit: int = DEFAULT_AGENT_LOST_LIMIT,
) -> Decision | Need | None:
    """``decide(graph, whole_state, now)`` from ``part`` of it, or what it lacks for that
    (see the module docstring). Raises ``ValueError`` where ``decide`` would."""
    state, counts = part.state, part.counts
    if state.status not in _LIVE or state.cancel is not None or counts.failed:
        return None
    shape = shape_of(graph)
    draft = Draft(graph, state, now, agent_lost_limit=agent_lost_limit, partial=True)
    deadline = deadline_of(graph, state, draft)
    if deadline is not None and now >= deadline:
        return None
    given = state.steps.keys()
    before = dict(draft.status)
    settle(draft, None)
    ended = {sid for sid in draft.order if draft.status[sid].terminal and not before[sid].terminal}
    missing = _lacking(given, (shape.dependents[sid] for sid in ended))
    if missing:
        return Need(missing)

    def readiness(node: StepNode) -> EdgeState | None:
        fresh = [draft.edge(edge) for edge in node.needs if edge.step in ended]
        left = part.needs_open[node.id] - len(fresh)
        if left < 0:
            return None  # the counts disagree with the steps: let decide see everything
        if node.join == Join.ANY:
            if EdgeState.MET in fresh:
                return EdgeState.MET
            return EdgeState.DEAD if left == 0 else EdgeState.OPEN
        if EdgeState.DEAD in fresh:
            return EdgeState.DEAD
        return EdgeState.MET if left == 0 else EdgeState.OPEN

    # The pending steps an ended step may move, in topological order (as decide visits them);
    # a step skipped here ends too, and its dependents join the queue behind it.
    queue = [shape.index[sid] for sid in _pending_after(draft, ended, draft.order)]
    heapq.heapify(queue)
    pending: list[str] = []  # in topological order, as popped
    seen: set[str] = set()
    while queue:
        sid = shape.order[heapq.heappop(queue)]
        if sid in seen:
            continue
        seen.add(sid)
        pending.append(sid)
        ready = readiness(draft.nodes[sid])
        if ready is None:
            return None
        if ready == EdgeState.DEAD:
            missing = _lacking(given, (shape.sources[sid], shape.dependents[sid]))
            if missing:
                return Need(missing)
            draft.set_step(sid, StepStatus.SKIPPED, skip_reason(draft, sid))
            ended.add(sid)
            for dep in _pending_after(draft, ended, shape.dependents[sid]):
                heapq.heappush(queue, shape.index[dep])
    held = halting(draft, state.resumed_at)
    for sid in pending:
        node = draft.nodes[sid]
        if draft.status[sid] != StepStatus.PENDING:
            continue
        if (not held or is_handler(node)) and readiness(node) == EdgeState.MET:
            draft.start(sid)

    after = counts - count(graph, before) + count(graph, draft.status)
    if after.active <= 0:
        return None  # the run ends, or skips what can never run: decide sees it whole
    if after.approvals == after.active:
        waiting = [
            sid
            for sid in draft.order
            if draft.status[sid] in ACTIVE and draft.nodes[sid].type == StepType.APPROVAL
        ]
        if len(waiting) < after.approvals:
            return None  # the reason names every waiting approval
        pause_or_resume(draft, waiting)
    else:
        pause_or_resume(draft, None)
    if deadline is not None:
        draft.wake(deadline)
    return Decision(actions=tuple(draft.actions), wake_at=min(draft.due, default=None))


def _pending_after(draft: Draft, ended: set[str], steps: Iterable[str]) -> list[str]:
    """Those of ``steps`` that are PENDING with an edge from a step in ``ended``."""
    return [
        sid
        for sid in steps
        if draft.status[sid] == StepStatus.PENDING
        and any(edge.step in ended for edge in draft.nodes[sid].needs)
    ]


def _lacking(given: Iterable[str], groups: Iterable[Iterable[str]]) -> frozenset[str]:
    have = set(given)
    return frozenset(sid for group in groups for sid in group if sid not in have)


def successors(graph: Graph, steps: Iterable[str]) -> set[str]:
    """``steps`` and every step that needs one of them: what ``advance`` is given first."""
    dependents = shape_of(graph).dependents
    out = set(steps)
    for sid in list(out):
        out.update(dependents[sid])
    return out
