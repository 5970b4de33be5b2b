"""The decision being built: the execution as it will be once the actions so far are applied.

``decide`` works in one pass over a ``Draft``. Every action it emits also updates the draft the
way the runtime will update the stored state, so later rules in the same pass see the effect
(a step that just succeeded lets its dependents start in the same decision) and applying the
whole decision leaves nothing more to do.

Every transition is emitted as its action followed by a ``Log`` line with the reason.
"""

from __future__ import annotations

from opsflow.engine.edges import EdgeState, join_state, produced
from opsflow.engine.model import (
    DEFAULT_AGENT_LOST_LIMIT,
    Action,
    CancelJob,
    Edge,
    EvaluateCondition,
    ExecutionState,
    ExpandItems,
    Graph,
    Log,
    OpenApproval,
    SetExecutionStatus,
    SetStepStatus,
    StartChildWorkflow,
    StartJob,
    StepNode,
    StepState,
)
from opsflow.engine.topology import shape_of
from opsflow.engine.wording import STATUS_VERB
from opsflow.status import ExecutionStatus, JobStatus, Join, Outcome, StepStatus, StepType

ACTIVE = frozenset({StepStatus.RUNNING, StepStatus.WAITING})
TERMINAL = frozenset(status for status in StepStatus if status.terminal)
_NEW = StepState()


class Draft:
    """Working copy of step and execution statuses, plus the actions that produce them."""

    def __init__(
        self,
        graph: Graph,
        state: ExecutionState,
        now: float,
        *,
        agent_lost_limit: int = DEFAULT_AGENT_LOST_LIMIT,
        partial: bool = False,
    ) -> None:
        """``partial``: ``state.steps`` holds only some steps (``engine.advance``), and the
        draft covers those alone, in topological order; otherwise it covers every step."""
        self.graph = graph
        self.agent_lost_limit = agent_lost_limit
        self.now = now
        self.shape = shape_of(graph)
        self.nodes: dict[str, StepNode] = self.shape.nodes
        if len(state.steps) > len(self.nodes) or not self.nodes.keys() >= state.steps.keys():
            unknown = sorted(set(state.steps) - set(self.nodes))
            raise ValueError(f"state has steps the graph does not define: {', '.join(unknown)}")
        index = self.shape.index
        self.order = (
            tuple(sorted(state.steps, key=index.__getitem__)) if partial else self.shape.order
        )
        self.states: dict[str, StepState] = {sid: state.steps.get(sid, _NEW) for sid in self.order}
        self.status: dict[str, StepStatus] = {sid: st.status for sid, st in self.states.items()}
        self.entered_at: dict[str, float | None] = {
            sid: st.entered_at for sid, st in self.states.items()
        }
        self.retry_at: dict[str, float | None] = {
            sid: st.retry_at for sid, st in self.states.items()
        }
        self.execution = state.status
        self.started_at = state.started_at
        self.actions: list[Action] = []
        self.due: list[float] = []
        self._produced: dict[str, frozenset[Outcome]] = {}
        self._queued: dict[str, int] = {}  # jobs started per step in this decision

    # -- reading ---------------------------------------------------------------------------

    def edges(self, node: StepNode) -> list[tuple[Edge, EdgeState]]:
        """Each of ``node``'s edges with its state, as of this draft."""
        return [(edge, self.edge(edge)) for edge in node.needs]

    def edge(self, edge: Edge) -> EdgeState:
        """The state of one edge. What a terminal source produced is computed once per
        decision (terminal statuses never change within one), which keeps wide joins cheap."""
        source = edge.step
        made = self._produced.get(source)
        if made is None:
            status = self.status[source]
            if status not in TERMINAL:
                return EdgeState.OPEN
            made = produced(self.nodes[source], status, self.states[source])
            self._produced[source] = made
        return EdgeState.MET if edge.outcome in made else EdgeState.DEAD

    def readiness(self, node: StepNode) -> EdgeState:
        """MET when ``node`` may start, DEAD when it never will, OPEN otherwise."""
        return join_state(node, [self.edge(edge) for edge in node.needs])

    def ready(self, node: StepNode) -> bool:
        """``readiness(node) == MET``, stopping at the first edge that settles it."""
        met = (self.edge(edge) == EdgeState.MET for edge in node.needs)
        if not node.needs:
            return True
        return any(met) if node.join == Join.ANY else all(met)

    def dead(self, node: StepNode) -> bool:
        """``readiness(node) == DEAD``, stopping at the first edge that settles it."""
        dead = (self.edge(edge) == EdgeState.DEAD for edge in node.needs)
        if not node.needs:
            return False
        return all(dead) if node.join == Join.ANY else any(dead)

    def active(self) -> list[str]:
        """Steps still doing something: running, or waiting for people or a retry delay."""
        return [sid for sid in self.order if self.status[sid] in ACTIVE]

    def wake(self, at: float) -> None:
        """Remember a future due time; the earliest becomes ``Decision.wake_at``."""
        self.due.append(at)

    # -- writing ---------------------------------------------------------------------------

    def log(self, message: str, step: str | None = None) -> None:
        self.actions.append(Log(message, step))

    def set_step(
        self, step: str, status: StepStatus, reason: str, retry_at: float | None = None
    ) -> None:
        self.actions.append(SetStepStatus(step, status, reason, retry_at))
        self.status[step] = status
        self._produced.pop(step, None)
        self.entered_at[step] = self.now
        self.retry_at[step] = retry_at
        self.log(f"step {step} {STATUS_VERB[status]}: {reason}", step)

    def set_execution(self, status: ExecutionStatus, reason: str) -> None:
        self.actions.append(SetExecutionStatus(status, reason))
        self.execution = status
        if status == ExecutionStatus.RUNNING and self.started_at is None:
            self.started_at = self.now
        self.log(f"execution {status.value}: {reason}")

    def cancel_job(
        self,
        step: str,
        attempt: int,
        as_status: JobStatus,
        force: bool,
        reason: str,
        *,
        named: str | None = None,
        graceful_stop: bool = False,
    ) -> None:
        """Stop attempt ``attempt`` (the step's number); ``named``: how the log names it
        instead of ``attempt N`` (``item 3 attempt 2``: an item's attempts count on their
        own); ``graceful_stop``: not forced, yet a picked-up job is stopped (normal grace)."""
        self.actions.append(CancelJob(step, attempt, as_status, force, reason, graceful_stop))
        verb = "stopping" if force or graceful_stop else "withdrawing (not yet picked up)"
        self.log(f"step {step}: {verb} {named or f'attempt {attempt}'}: {reason}", step)

    def _next_attempt(self, step: str) -> int:
        queued = self._queued.get(step, 0) + 1
        self._queued[step] = queued
        return len(self.states[step].attempts) + queued

    def start_item(self, step: str, item: int, own: int, tries: int, why: str = "") -> None:
        """Queue the next attempt of ``item`` of fanned-out ``step`` (already RUNNING).

        ``own``: the item's own number for this attempt (its attempts are counted apart from
        the step's, which number every item's jobs in one sequence); ``tries``: the item's
        attempts so far since a person last retried it (what ``retries`` counts)."""
        node = self.nodes[step]
        number = self._next_attempt(step)
        self.actions.append(StartJob(step, number, item))
        if node.placement_timeout:
            self.wake(self.now + node.placement_timeout)
        text = f"step {step} item {item} started"
        of = f"{tries + 1} of {1 + node.retries}"
        if node.retries and own == tries + 1:
            text += f" (attempt {of})"
        elif node.retries:
            text += f" (attempt {own}, {of} since a person's retry)"
        elif own > 1:
            text += f" (attempt {own})"
        self.log(f"{text}: {why}" if why else text, step)

    def start(self, step: str, why: str = "") -> None:
        """Start ``step``: queue a job, evaluate a condition, open an approval or a child run.

        The runtime moves the step to RUNNING (WAITING for an approval) when it applies the
        start action, so no ``SetStepStatus`` is emitted alongside it.
        """
        node = self.nodes[step]
        state = self.states[step]
        suffix = f": {why}" if why else ""
        if node.type == StepType.CONDITION:
            self.actions.append(EvaluateCondition(step))
            status, text = StepStatus.RUNNING, "evaluating its condition"
        elif node.type == StepType.APPROVAL:
            self.actions.append(OpenApproval(step))
            status, text = StepStatus.WAITING, "is waiting for approval"
        elif node.type == StepType.WORKFLOW:
            self.actions.append(StartChildWorkflow(step))
            # Only a request: if the child cannot start, the step fails saying why.
            status, text = StepStatus.RUNNING, "is starting its child workflow"
        elif node.fan_out is not None:
            # Its items start in the next decision, once the runtime recorded the list.
            self.actions.append(ExpandItems(step))
            # A recorded list is kept (a person retried or skipped an item): not worked out.
            text = "is working out its items" if state.items is None else "goes on with its items"
            status = StepStatus.RUNNING
        else:
            number = self._next_attempt(step)
            self.actions.append(StartJob(step, number))
            if node.placement_timeout:
                # The job is queued at ``now``: look again when its placement time is up.
                self.wake(self.now + node.placement_timeout)
            status, text = StepStatus.RUNNING, "started"
            tries = number - state.retry_base  # a person's retry starts the count afresh
            if node.retries:
                text += f" (attempt {tries} of {1 + node.retries})"
            elif number > 1:
                text += f" (attempt {number})"
        self.status[step] = status
        self.entered_at[step] = self.now
        self.retry_at[step] = None
        self.log(f"step {step} {text}{suffix}", step)
