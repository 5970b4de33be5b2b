"""``decide(graph, state, now) -> Decision``: the whole of opsflow's DAG semantics, as a reducer.

The runtime loads an execution's state, calls ``decide``, applies the returned actions in one
transaction, writes the outside world's answers (job results into ``Attempt``; approval
decisions, condition results and child results into ``StepState.gate_result``), and calls
``decide`` again until it returns no actions; then it arms one timer at ``Decision.wake_at``.
``decide`` is pure (no I/O, clock, randomness) and idempotent: on a state where its actions were
applied it returns nothing until new facts arrive or ``now`` passes a due time. It raises
``ValueError`` on a state that breaks the contract (the runtime then ends the execution ERROR).

How the runtime applies each action (the engine relies on exactly this):

* ``SetExecutionStatus`` sets the status; the first RUNNING also sets ``started_at = now``.
* ``SetStepStatus`` sets ``status``, ``entered_at = now`` and ``retry_at`` (None clears it).
* ``StartJob(step, n)`` creates attempt ``n`` (PENDING) and moves the step to RUNNING;
  ``EvaluateCondition`` and ``StartChildWorkflow`` move it to RUNNING, ``OpenApproval`` to
  WAITING (``entered_at = now`` in each case). The engine emits no ``SetStepStatus`` for these,
  so each start is one write. Attempt numbers count every attempt: ``len(attempts) + 1``.
* ``ExpandItems(step)`` (a step with ``fan_out``) records the step's list, or writes
  ``gate_result`` FAILED with why it cannot be made, keeps a list already recorded, and moves
  the step to RUNNING; its items then start in the next decision (``engine.items``), each as a
  ``StartJob`` with ``item``, which leaves the RUNNING step's status and ``entered_at`` alone.
* ``CancelJob`` ends a still PENDING attempt at once as ``as_status``; otherwise, when ``force``,
  sets ``cancel_requested`` and has the agent stop the job, which then ends as ``as_status``;
  a non-forced cancel of a picked-up job does nothing. The runtime reconciles when an attempt
  starts running (``started_at``), which arms its timeout.

One decision, in order:

1. A PENDING execution (admitted by the runtime) becomes RUNNING (or, with a cancel request,
   goes straight to CANCELLED without starting anything).
2. *Stop*: a cancel request, or the workflow timeout (``now >= (resumed_at or started_at) +
   graph.timeout``), which acts as a FORCE cancel whose outcome is FAILED "workflow timed out
   after N". With both, the cancel's outcome wins and the timeout only forces it.
3. Started steps settle their news (``results``: job results, retries, timeouts, gate answers).
4. Pending steps, in topological order: under a stop they are CANCELLED. Otherwise a step whose
   needs are dead is SKIPPED with a reason naming the dead edge ("needs build.succeeded but
   build failed"), transitively; then every ready step starts, all in parallel, except that a
   halting execution (``outcome``) starts only handlers; and when nothing is active any more,
   the steps left pending can never run and are SKIPPED.
5. The execution's status: with every step terminal, the outcome (stop's, else FAILED /
   REJECTED / COMPLETED, see ``outcome``). Otherwise PAUSED when the only active steps are
   approvals waiting for people (a job in flight or a retry waiting keeps it RUNNING), else
   RUNNING; emitted only when it changes.

CLEANUP cancels behave as GRACEFUL here; the runtime will run each step's cleanup action (e.g.
Terraform destroy) after the execution ends CANCELLED with a CLEANUP request.
"""

from __future__ import annotations

from opsflow.engine.attempts import Stop
from opsflow.engine.draft import Draft
from opsflow.engine.edges import EdgeState, is_handler
from opsflow.engine.model import (
    DEFAULT_AGENT_LOST_LIMIT,
    CancelMode,
    Decision,
    ExecutionState,
    Graph,
)
from opsflow.engine.outcome import halting, unhandled
from opsflow.engine.results import settle
from opsflow.engine.topology import shape_of
from opsflow.engine.wording import describe_result, format_duration, spell_edge
from opsflow.status import ExecutionStatus, Join, StepStatus, StepType


def decide(
    graph: Graph,
    state: ExecutionState,
    now: float,
    *,
    agent_lost_limit: int = DEFAULT_AGENT_LOST_LIMIT,
) -> Decision:
    """What to do now for one execution, and when to look again (see the module docstring).
    ``agent_lost_limit``: attempts in a row whose agent was lost before a step fails."""
    if state.status.terminal:
        return Decision(actions=())
    draft = Draft(graph, state, now, agent_lost_limit=agent_lost_limit)
    if draft.execution == ExecutionStatus.PENDING and state.cancel is None:
        draft.set_execution(ExecutionStatus.RUNNING, "started")
    stop = _stop(graph, state, draft)
    settle(draft, stop)
    _propagate(draft, stop, state.resumed_at)
    _conclude(draft, stop)
    if draft.execution.terminal:
        return Decision(actions=tuple(draft.actions))
    deadline = deadline_of(graph, state, draft)
    if deadline is not None and deadline > now:
        draft.wake(deadline)  # also under a graceful cancel, which the timeout turns to force
    return Decision(actions=tuple(draft.actions), wake_at=min(draft.due, default=None))


def can_wake(graph: Graph) -> bool:
    """Whether any decision on ``graph`` may ask to be woken (``Decision.wake_at``): only a
    workflow timeout, a step timeout or a retry delay sets a due time. When not, the runtime
    knows no timer of the execution exists and need not clear one. (Worked out once per
    graph object, with its ``Shape``.)"""
    return shape_of(graph).wakes


def deadline_of(graph: Graph, state: ExecutionState, draft: Draft) -> float | None:
    """When the workflow timeout falls due (None: no timeout, or the run has not started)."""
    if graph.timeout is None or graph.timeout <= 0:
        return None
    base = state.resumed_at if state.resumed_at is not None else draft.started_at
    return None if base is None else base + graph.timeout


def _stop(graph: Graph, state: ExecutionState, draft: Draft) -> Stop | None:
    deadline = deadline_of(graph, state, draft)
    timed_out = deadline is not None and draft.now >= deadline
    if state.cancel is not None:
        force = state.cancel.mode == CancelMode.FORCE or timed_out
        return Stop(force, ExecutionStatus.CANCELLED, state.cancel.reason or "cancelled")
    if timed_out:
        assert graph.timeout is not None
        return Stop(
            True,
            ExecutionStatus.FAILED,
            f"workflow timed out after {format_duration(graph.timeout)}",
        )
    return None


def _propagate(draft: Draft, stop: Stop | None, resumed_at: float | None) -> None:
    """Cancel, skip or start the pending steps (step 4 of the module docstring)."""
    pending = [sid for sid in draft.order if draft.status[sid] == StepStatus.PENDING]
    if stop is not None:
        for sid in pending:
            draft.set_step(sid, StepStatus.CANCELLED, f"{stop.reason} before it started")
        return
    for sid in pending:
        if draft.dead(draft.nodes[sid]):
            draft.set_step(sid, StepStatus.SKIPPED, skip_reason(draft, sid))
    held = halting(draft, resumed_at)
    for sid in pending:
        if draft.status[sid] != StepStatus.PENDING:
            continue
        node = draft.nodes[sid]
        if (not held or is_handler(node)) and draft.ready(node):
            draft.start(sid)
    if not draft.active():
        status, reason = held.verdict() if held else (ExecutionStatus.FAILED, "")
        ended = "failed" if status == ExecutionStatus.FAILED else "was rejected"
        for sid in pending:
            if draft.status[sid] == StepStatus.PENDING:
                draft.set_step(
                    sid, StepStatus.SKIPPED, f"never ran: the execution {ended} ({reason})"
                )


def skip_reason(draft: Draft, sid: str) -> str:
    """Why ``sid`` is skipped, naming its dead edges (every source it needs is in ``draft``)."""
    node = draft.nodes[sid]
    dead = [edge for edge, st in draft.edges(node) if st == EdgeState.DEAD]

    def because(edge_index: int) -> str:
        edge = dead[edge_index]
        result = describe_result(
            draft.nodes[edge.step], draft.status[edge.step], draft.states[edge.step]
        )
        return f"{edge.step} {result}"

    if node.join == Join.ANY and len(node.needs) > 1:
        # Two dead edges from one step (a.false and a.failed) give one reason, not two.
        reasons = ", ".join(dict.fromkeys(because(i) for i in range(len(dead))))
        return f"none of its needs can be met ({reasons})"
    return f"needs {spell_edge(dead[0])} but {because(0)}"


def _conclude(draft: Draft, stop: Stop | None) -> None:
    """Set the execution's status (step 5 of the module docstring)."""
    active = draft.active()
    if not active:
        if stop is not None:
            draft.set_execution(stop.outcome, stop.reason)
            return
        found = unhandled(draft)
        if found:
            draft.set_execution(*found.verdict())
        else:
            draft.set_execution(ExecutionStatus.COMPLETED, "every step finished")
        return
    waiting = [sid for sid in active if draft.nodes[sid].type == StepType.APPROVAL]
    pause_or_resume(draft, waiting if len(waiting) == len(active) else None)


def pause_or_resume(draft: Draft, waiting: list[str] | None) -> None:
    """PAUSED when the only active steps are the approvals ``waiting`` (None: other work is
    active), else RUNNING; each emitted only when it changes the execution's status."""
    if waiting is not None:
        if draft.execution != ExecutionStatus.PAUSED:
            draft.set_execution(
                ExecutionStatus.PAUSED, f"waiting for approval of {', '.join(waiting)}"
            )
    elif draft.execution != ExecutionStatus.RUNNING:
        draft.set_execution(ExecutionStatus.RUNNING, "resumed")
