"""``advance`` (the reconcile of a few steps) against ``decide`` (the whole execution).

Random graphs run through a ``Twin``: a ``Sim`` that reconciles the way the runtime does. News
about a step (its job started or ended, its gate was answered) goes through ``advance`` with
only that step, its successors and the kept counts; a cancel, a person's retry or skip, and a
timer falling due go through ``decide``. Every decision ``advance`` makes is checked against
``decide`` on the whole state (the same actions in the same order), the timer the runtime keeps
is checked never to be later than a due time, and the counts it keeps are checked against a
count of the whole state after every reconcile. The rules themselves are checked as in
``test_properties`` (each run also ends as the rules say).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from opsflow.engine.advance import (
    Counts,
    Need,
    Partial,
    advance,
    count,
    needs_open_of,
    recount,
    successors,
)
from opsflow.engine.control import retry_step
from opsflow.engine.model import Action, CancelMode, Decision, ExecutionState, Graph
from opsflow.status import ExecutionStatus, JobStatus, Outcome, StepStatus, StepType
from tests.unit.engine.sim import MAX_ROUNDS, Sim, graph, node
from tests.unit.engine.test_properties import World, check_end, drive, graphs


class Twin(Sim):
    """A ``Sim`` whose reconciles take ``advance`` where the runtime does, checked each time."""

    def __init__(self, g: Graph) -> None:
        super().__init__(g)
        self.touched: set[str] = set()
        self.timer: float | None = None  # the runtime's stored timer
        self.counts: Counts | None = None  # None until the first reconcile writes them
        self.needs_open: dict[str, int] = {}
        self.fast = 0
        self.full = 0

    # News about one step: what the runtime reconciles through ``advance``.
    def job_running(self, step_id: str, number: int | None = None) -> None:
        super().job_running(step_id, number)
        self.touched.add(step_id)

    def job_ends(self, step_id: str, status: JobStatus = JobStatus.COMPLETED, **kw: Any) -> None:
        super().job_ends(step_id, status, **kw)
        self.touched.add(step_id)

    def answer(self, step_id: str, outcome: Outcome, reason: str | None = None) -> None:
        super().answer(step_id, outcome, reason)
        self.touched.add(step_id)

    def _advance(self, touched: set[str]) -> Decision | None:
        assert self.counts is not None
        given = successors(self.graph, touched)
        for _ in range(len(self.graph.steps) + 1):
            steps = {sid: self.state.steps[sid] for sid in given}
            pending = {sid for sid, s in steps.items() if s.status == StepStatus.PENDING}
            part = Partial(
                ExecutionState(
                    status=self.state.status,
                    created_at=self.state.created_at,
                    started_at=self.state.started_at,
                    steps=steps,
                    cancel=self.state.cancel,
                    resumed_at=self.state.resumed_at,
                ),
                self.counts,
                {sid: self.needs_open[sid] for sid in pending},
            )
            result = advance(self.graph, part, self.now, agent_lost_limit=self.agent_lost_limit)
            if not isinstance(result, Need):
                return result
            assert result.steps and not result.steps & given, result
            given |= result.steps
        raise AssertionError("advance kept asking for more steps")

    def reconcile(self) -> list[Action]:
        applied: list[Action] = []
        touched, self.touched = self.touched, set()
        timer_due = self.timer is not None and self.timer <= self.now
        for _ in range(MAX_ROUNDS):
            reference = self.decide()
            decision: Decision | None = None
            if touched and self.counts is not None and not timer_due:
                decision = self._advance(touched)
            if decision is None:
                self.full += 1
                decision = reference
                fast = False
            else:
                self.fast += 1
                fast = True
                assert decision.actions == reference.actions, (decision, reference)
                # advance sees fewer due times than decide, never others.
                if reference.wake_at is None:
                    assert decision.wake_at is None
                elif decision.wake_at is not None:
                    assert decision.wake_at >= reference.wake_at
            was = {sid: s.status for sid, s in self.state.steps.items()}
            if decision.actions:
                if self.on_decision is not None:
                    self.on_decision(self, reference)
                for action in decision.actions:
                    if self.before_apply is not None:
                        self.before_apply(self, action)
                    self.apply(action)
                    applied.append(action)
            now = {sid: s.status for sid, s in self.state.steps.items()}
            changed = {sid for sid in now if now[sid] != was[sid]}
            if fast:
                assert self.counts is not None
                given = successors(self.graph, touched | changed)
                self.counts, still = recount(
                    self.graph,
                    self.counts,
                    self.needs_open,
                    {sid: was[sid] for sid in given},
                    {sid: now[sid] for sid in given},
                )
                self.needs_open.update(still)
                # Stored, the runtime's timer only moves earlier on this path.
                if decision.wake_at is not None:
                    self.timer = min(self.timer or decision.wake_at, decision.wake_at)
            else:
                self.counts = count(self.graph, now)
                self.needs_open = needs_open_of(self.graph, now)
                self.timer = decision.wake_at
            self.check_counts()
            if not decision.actions:
                break
            touched = changed
        else:
            raise AssertionError(f"no settled decision within {MAX_ROUNDS} rounds: {applied}")
        if self.state.status.terminal:
            self.timer = None
        else:
            reference = self.decide()
            assert reference.actions == (), reference
            if reference.wake_at is not None:  # the kept timer is never late
                assert self.timer is not None and self.timer <= reference.wake_at
        self.wake_at = self.timer
        return applied

    def check_counts(self) -> None:
        statuses = {sid: s.status for sid, s in self.state.steps.items()}
        assert self.counts == count(self.graph, statuses)
        for sid, n in needs_open_of(self.graph, statuses).items():
            assert self.needs_open[sid] == n, (sid, self.needs_open[sid], n)

    def write(
        self, changes: dict[str, Any], status: ExecutionStatus | None = None, *, resume: bool = True
    ) -> None:
        super().write(changes, status, resume=resume)
        self.touched.clear()  # a person's change: the runtime reconciles it whole


def new_twin_world(g: Graph, data: st.DataObject) -> World:
    twin = Twin(g)
    world = World(twin, data)
    twin.on_decision = world.on_decision
    twin.before_apply = world.before_apply
    return world


SETTINGS = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SETTINGS
@given(g=graphs(), data=st.data())
def test_advance_agrees_with_decide_on_random_runs(g: Graph, data: st.DataObject) -> None:
    world = new_twin_world(g, data)
    twin = world.sim
    assert isinstance(twin, Twin)
    if data.draw(st.booleans()):
        mode = data.draw(st.sampled_from(list(CancelMode)))
        world.at(data.draw(st.integers(0, 30)), "cancel", mode)
    if data.draw(st.booleans()):
        world.at(data.draw(st.integers(0, 12)), "cancel item")
    drive(world)
    event(f"reconciles through advance: {'some' if twin.fast else 'none'}")
    event(f"advance share: {round(10 * twin.fast / (twin.fast + twin.full))}/10")
    check_end(world)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(g=graphs(), data=st.data())
def test_advance_agrees_with_decide_after_a_manual_retry(g: Graph, data: st.DataObject) -> None:
    world = new_twin_world(g, data)
    twin = world.sim
    drive(world)
    failed = [sid for sid, s in twin.statuses().items() if s == StepStatus.FAILED]
    if twin.execution == ExecutionStatus.FAILED and failed:
        twin.now += 100.0
        from_here = data.draw(st.booleans())
        changes = retry_step(
            g, twin.state, data.draw(st.sampled_from(failed)), from_here, now=twin.now
        )
        world.resume(changes)
        twin.write(changes, ExecutionStatus.RUNNING)
        drive(world)
    check_end(world)


def _wide(n: int) -> Graph:
    """A fan-out of ``n`` steps from a root, joined again by one step."""
    leaves = [node(f"p{i}", needs=["root"]) for i in range(n)]
    return graph(node("root"), *leaves, node("join", needs=[leaf.id for leaf in leaves]))


def test_a_job_end_in_a_wide_run_is_decided_from_its_step_alone() -> None:
    twin = Twin(_wide(50))
    twin.reconcile()
    twin.succeed("root")
    twin.reconcile()
    full = twin.full
    for i in range(50):
        twin.succeed(f"p{i}")
        twin.reconcile()
    assert twin.status("join") == StepStatus.RUNNING
    twin.succeed("join")
    twin.reconcile()
    assert twin.execution == ExecutionStatus.COMPLETED
    # Only the run's end needed the whole execution: the decision that ends it, and (in the
    # Sim, which asks until nothing is left) the check that nothing follows.
    assert twin.full - full == 2
    assert twin.counts == Counts(0, 0, 0)


def test_advance_asks_for_the_steps_it_lacks() -> None:
    g = graph(node("a"), node("b", needs=["a"]), node("c", needs=["b"]), node("d"))
    twin = Twin(g)
    twin.reconcile()
    twin.fail("a", retryable=False)
    assert twin.counts is not None
    state = twin.state
    part = Partial(
        ExecutionState(
            status=state.status,
            created_at=state.created_at,
            started_at=state.started_at,
            steps={"a": state.steps["a"], "b": state.steps["b"]},
        ),
        twin.counts,
        {"b": 1},
    )
    # b is skipped, so c (which needs b) must be seen too.
    assert advance(g, part, twin.now) == Need(frozenset({"c"}))


def test_advance_pauses_on_an_approval_and_leaves_the_end_to_decide() -> None:
    g = graph(node("a"), node("b", type=StepType.APPROVAL, needs=["a"]), node("c"))
    twin = Twin(g)
    twin.reconcile()
    twin.succeed("c")
    twin.reconcile()
    full = twin.full
    twin.succeed("a")
    twin.reconcile()
    # a's end opens b, and the run pauses on it: advance sees b, the only approval waiting.
    assert twin.full == full
    assert twin.execution == ExecutionStatus.PAUSED
    twin.approve("b")
    twin.reconcile()
    # Nothing is active afterwards: the run's end is decide's.
    assert twin.full > full
    assert twin.state.status == ExecutionStatus.COMPLETED
