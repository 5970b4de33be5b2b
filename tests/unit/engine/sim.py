"""A stand-in for the runtime around the pure engine, for tests.

``Sim`` applies the engine's actions to an ``ExecutionState`` exactly the way the runtime does
(see ``opsflow.engine.reducer``'s docstring), reconciles until the engine has nothing more to
say, and offers the outside world's events (a job starts or ends, people answer an approval, a
condition is evaluated, a cancel is requested) as methods. A virtual clock (``now``) moves only
when a test says so. Every action applied is recorded in ``history`` with its time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from opsflow.engine import decide
from opsflow.engine.model import (
    Action,
    Attempt,
    CancelJob,
    CancelMode,
    CancelRequest,
    Decision,
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
from opsflow.status import ExecutionStatus, JobStatus, Join, Outcome, StepStatus, StepType

# A decision, the runtime's immediate answers to it, and one more to settle; a fanned-out step
# adds a round for its list (and a chain of empty lists one each).
MAX_ROUNDS = 16


def edge(spec: str) -> Edge:
    """``"build"`` or ``"build.failed"`` as written in ``needs``."""
    step, _, outcome = spec.partition(".")
    return Edge(step, Outcome(outcome) if outcome else Outcome.SUCCESS)


def node(
    step_id: str,
    type: StepType | str = StepType.SCRIPT,
    needs: Iterable[str] = (),
    join: Join | str = Join.ALL,
    **fields: Any,
) -> StepNode:
    """A step for a test graph: ``node("deploy", needs=["build", "approve.approved"])``."""
    return StepNode(
        id=step_id,
        type=StepType(type),
        needs=tuple(edge(n) for n in needs),
        join=Join(join),
        **fields,
    )


def graph(*nodes: StepNode, timeout: float | None = None) -> Graph:
    return Graph(steps=tuple(nodes), timeout=timeout)


class Sim:
    """The runtime's side of the contract, in memory."""

    def __init__(self, g: Graph, now: float = 0.0, *, agent_lost_limit: int = 3) -> None:
        self.graph = g
        self.now = now
        self.agent_lost_limit = agent_lost_limit
        self.state = ExecutionState(
            status=ExecutionStatus.PENDING,
            created_at=now,
            steps={n.id: StepState() for n in g.steps},
        )
        self.history: list[tuple[float, Action]] = []
        self.wake_at: float | None = None
        self.kill_as: dict[tuple[str, int], JobStatus] = {}  # attempts being stopped, and how
        # How many items each fanned-out step's list has when worked out (None: it cannot be;
        # a step not named here gets 3).
        self.item_counts: dict[str, int | None] = {}
        # Called with each action just before it is applied (property tests check rules here).
        self.before_apply: Callable[[Sim, Action], None] | None = None
        # Called with each non-empty decision, before any of it is applied.
        self.on_decision: Callable[[Sim, Decision], None] | None = None

    # -- the runtime loop ----------------------------------------------------------------------

    def decide(self) -> Decision:
        return decide(self.graph, self.state, self.now, agent_lost_limit=self.agent_lost_limit)

    def reconcile(self) -> list[Action]:
        """Decide and apply until the engine returns no actions; return everything applied."""
        applied: list[Action] = []
        for _ in range(MAX_ROUNDS):
            decision = self.decide()
            if not decision.actions:
                self.wake_at = decision.wake_at
                return applied
            if self.on_decision is not None:
                self.on_decision(self, decision)
            for action in decision.actions:
                if self.before_apply is not None:
                    self.before_apply(self, action)
                self.apply(action)
                applied.append(action)
        raise AssertionError(f"engine did not settle within {MAX_ROUNDS} rounds: {applied}")

    def apply(self, action: Action) -> None:
        """Apply one action as the runtime does."""
        self.history.append((self.now, action))
        if isinstance(action, SetExecutionStatus):
            started = self.state.started_at
            if action.status == ExecutionStatus.RUNNING and started is None:
                started = self.now
            self.state = dataclasses.replace(self.state, status=action.status, started_at=started)
        elif isinstance(action, SetStepStatus):
            self._put(
                action.step, status=action.status, entered_at=self.now, retry_at=action.retry_at
            )
        elif isinstance(action, StartJob):
            step = self.step(action.step)
            assert action.attempt == len(step.attempts) + 1, action
            attempt = Attempt(
                number=action.attempt,
                status=JobStatus.PENDING,
                created_at=self.now,
                item=action.item,
            )
            if action.item is not None:  # the step is RUNNING already: only the job is new
                assert step.status == StepStatus.RUNNING and step.items is not None, action
                assert 0 <= action.item < step.items, action
                self._put(action.step, attempts=(*step.attempts, attempt))
                return
            self._put(
                action.step,
                status=StepStatus.RUNNING,
                entered_at=self.now,
                retry_at=None,
                attempts=(*step.attempts, attempt),
            )
        elif isinstance(action, CancelJob):
            self._cancel_job(action)
        elif isinstance(action, ExpandItems):
            step = self.step(action.step)
            changes: dict[str, Any] = {"status": StepStatus.RUNNING, "entered_at": self.now}
            if step.items is None:  # a list recorded before (a person's retry) is kept
                count = self.item_counts.get(action.step, 3)
                if count is None:
                    changes.update(gate_result=Outcome.FAILED, gate_reason="for_each gave 5")
                else:
                    changes.update(items=count, gate_result=None)
            self._put(action.step, **changes)
        elif isinstance(action, EvaluateCondition | StartChildWorkflow):
            self._put(action.step, status=StepStatus.RUNNING, entered_at=self.now, gate_result=None)
        elif isinstance(action, OpenApproval):
            self._put(action.step, status=StepStatus.WAITING, entered_at=self.now, gate_result=None)
        else:
            assert isinstance(action, Log)

    def _cancel_job(self, action: CancelJob) -> None:
        attempts = list(self.step(action.step).attempts)
        index = action.attempt - 1
        attempt = attempts[index]
        if attempt.status.terminal:
            return  # raced the job's own end: nothing to do
        if attempt.status == JobStatus.PENDING:
            attempts[index] = dataclasses.replace(
                attempt,
                status=action.as_status,
                ended_at=self.now,
                error=action.reason,
                retryable=False,
                cancel_requested=True,
            )
        elif action.force or action.graceful_stop:
            attempts[index] = dataclasses.replace(
                attempt,
                cancel_requested=True,
                stopping_for_timeout=action.as_status == JobStatus.TIMEOUT or not action.force,
            )
            self.kill_as[(action.step, action.attempt)] = action.as_status
        else:
            return
        self._put(action.step, attempts=tuple(attempts))

    # -- reading -------------------------------------------------------------------------------

    def step(self, step_id: str) -> StepState:
        return self.state.steps[step_id]

    def status(self, step_id: str) -> StepStatus:
        return self.step(step_id).status

    def statuses(self) -> dict[str, StepStatus]:
        return {sid: st.status for sid, st in self.state.steps.items()}

    @property
    def execution(self) -> ExecutionStatus:
        return self.state.status

    def actions_since(self, index: int) -> list[Action]:
        return [a for _, a in self.history[index:]]

    def logs(self) -> list[str]:
        return [a.message for _, a in self.history if isinstance(a, Log)]

    # -- the outside world ---------------------------------------------------------------------

    def _put(self, step_id: str, **changes: Any) -> None:
        steps = dict(self.state.steps)
        steps[step_id] = dataclasses.replace(steps[step_id], **changes)
        self.state = dataclasses.replace(self.state, steps=steps)

    def _put_attempt(self, step_id: str, number: int | None = None, **changes: Any) -> None:
        """Change attempt ``number`` of the step (the last one when None)."""
        attempts = list(self.step(step_id).attempts)
        index = -1 if number is None else number - 1
        attempts[index] = dataclasses.replace(attempts[index], **changes)
        self._put(step_id, attempts=tuple(attempts))

    def advance(self, seconds: float) -> Sim:
        self.now += seconds
        return self

    def job_running(self, step_id: str, number: int | None = None) -> None:
        """The last attempt (or attempt ``number``) was picked up by an agent and started."""
        self._put_attempt(step_id, number, status=JobStatus.RUNNING, started_at=self.now)

    def job_ends(
        self,
        step_id: str,
        status: JobStatus = JobStatus.COMPLETED,
        *,
        retryable: bool = True,
        error: str | None = None,
        number: int | None = None,
    ) -> None:
        """The agent reports the end of the last attempt (or of attempt ``number``)."""
        attempt = self.step(step_id).attempts[-1 if number is None else number - 1]
        assert not attempt.status.terminal, f"{step_id} attempt {attempt.number} already ended"
        started = attempt.started_at if attempt.started_at is not None else self.now
        self._put_attempt(
            step_id,
            number,
            status=status,
            started_at=started,
            ended_at=self.now,
            retryable=retryable,
            error=error,
        )

    def killed(self, step_id: str, number: int | None = None) -> None:
        """The agent stopped the last attempt (or attempt ``number``) after a forced
        CancelJob."""
        if number is None:
            number = self.step(step_id).attempts[-1].number
        self.job_ends(step_id, self.kill_as.pop((step_id, number)), number=number)

    def succeed(self, step_id: str) -> None:
        """The last attempt ran and completed."""
        self.job_ends(step_id, JobStatus.COMPLETED)

    def fail(self, step_id: str, *, retryable: bool = True, error: str = "exit code 1") -> None:
        self.job_ends(step_id, JobStatus.FAILED, retryable=retryable, error=error)

    def lost(self, step_id: str) -> None:
        """The lease sweep fails the last attempt: its agent stopped heartbeating."""
        self.job_ends(step_id, JobStatus.FAILED, error="agent lost: its lease expired")
        self._put_attempt(step_id, agent_lost=True)

    def answer(self, step_id: str, outcome: Outcome, reason: str | None = None) -> None:
        """Write a gate's answer, as the runtime does with a compare-and-set."""
        step = self.step(step_id)
        assert step.status in (StepStatus.RUNNING, StepStatus.WAITING) and step.gate_result is None
        self._put(step_id, gate_result=outcome, gate_reason=reason)

    def approve(self, step_id: str, note: str | None = None) -> None:
        self.answer(step_id, Outcome.APPROVED, note)

    def reject(self, step_id: str, note: str | None = None) -> None:
        self.answer(step_id, Outcome.REJECTED, note)

    def condition(self, step_id: str, result: bool | None) -> None:
        """The runtime evaluated the condition: True, False, or None for an evaluation error."""
        if result is None:
            self.answer(step_id, Outcome.FAILED, "'nodes.x' is undefined")
        else:
            self.answer(step_id, Outcome.TRUE if result else Outcome.FALSE)

    def cancel(self, mode: CancelMode = CancelMode.GRACEFUL, reason: str = "cancelled") -> None:
        if self.state.cancel is None:
            request = CancelRequest(mode=mode, requested_at=self.now, reason=reason)
            self.state = dataclasses.replace(self.state, cancel=request)

    def write(
        self,
        changes: dict[str, StepState],
        status: ExecutionStatus | None = None,
        *,
        resume: bool = True,
    ) -> None:
        """Write step states from a manual-control helper, as the runtime does (``resume``:
        a retry or skip resumes the run; a cancel of items does not)."""
        steps = {**self.state.steps, **changes}
        new_status = status or self.state.status
        resumed_at = self.now if resume else self.state.resumed_at
        self.state = dataclasses.replace(
            self.state, steps=steps, status=new_status, resumed_at=resumed_at
        )
