"""Property tests: random DAGs driven by a random outside world, checked against the rules.

Each example builds a random graph (every step type, needs with random outcomes, joins,
retries, delays, timeouts, a workflow timeout), then runs it through ``Sim`` on a virtual clock
while Hypothesis decides how long each job takes and how it ends, what people answer (or that
they never do), what each condition evaluates to, and whether and how the run is cancelled.
The checks below re-state the rules independently of the engine's code.
"""

from __future__ import annotations

import dataclasses
import heapq
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from opsflow.engine import can_wake, decide
from opsflow.engine.control import (
    cancel_items,
    downstream,
    retry_item,
    retry_step,
    skip_item,
    skip_step,
)
from opsflow.engine.items import view_items
from opsflow.engine.model import (
    Action,
    CancelJob,
    CancelMode,
    Decision,
    Edge,
    EvaluateCondition,
    ExecutionState,
    ExpandItems,
    FanOut,
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
from opsflow.status import (
    GATE_TYPES,
    OUTCOMES_BY_TYPE,
    ExecutionStatus,
    JobStatus,
    Join,
    Outcome,
    StepStatus,
    StepType,
)
from tests.unit.engine.sim import Sim

MAX_EVENTS = 600
STARTS = (StartJob, EvaluateCondition, OpenApproval, StartChildWorkflow, ExpandItems)
OPEN_ITEM = (StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING)
NOT_RUN = (StepStatus.SKIPPED, StepStatus.CANCELLED)

# -- the rules, stated again -----------------------------------------------------------------


def met(edge: Edge, source: StepNode, st: StepState) -> bool:
    """Whether ``edge`` is met by its source's (terminal) state."""
    s, o = st.status, edge.outcome
    if o == Outcome.ALWAYS:
        ran = s in (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.APPROVED)
        return ran or s == StepStatus.REJECTED or (s == StepStatus.SKIPPED and st.user_skipped)
    if s == StepStatus.SKIPPED and st.user_skipped:
        own = {StepType.APPROVAL: Outcome.APPROVED, StepType.CONDITION: Outcome.TRUE}
        return o in (Outcome.SUCCESS, own.get(source.type, Outcome.SUCCEEDED))
    if o == Outcome.SUCCESS:
        if source.type == StepType.CONDITION:
            return s == StepStatus.SUCCEEDED and st.gate_result == Outcome.TRUE
        return s in (StepStatus.SUCCEEDED, StepStatus.APPROVED)
    if o in (Outcome.TRUE, Outcome.FALSE):
        return s == StepStatus.SUCCEEDED and st.gate_result == o
    return s.value == o.value  # succeeded, failed, approved, rejected


def needs_met(g: Graph, state: ExecutionState, step: StepNode) -> bool:
    nodes = {n.id: n for n in g.steps}
    results = [met(e, nodes[e.step], state.steps[e.step]) for e in step.needs]
    if not results:
        return True
    return any(results) if step.join == Join.ANY else all(results)


def unhandled(g: Graph, state: ExecutionState, status: StepStatus, kind: Outcome) -> list[str]:
    """Steps in ``status`` with no handler (a ``.kind``/``.always`` edge) that ran or may run."""
    out = []
    for sid, step_state in state.steps.items():
        if step_state.status != status:
            continue
        handlers = [
            n.id
            for n in g.steps
            if any(e.step == sid and e.outcome in (kind, Outcome.ALWAYS) for e in n.needs)
        ]
        live = [
            h
            for h in handlers
            if state.steps[h].status not in NOT_RUN or state.steps[h].user_skipped
        ]
        if not live:
            out.append(sid)
    return out


def needs_dead(g: Graph, state: ExecutionState, step: StepNode) -> bool:
    """Whether ``step``'s needs can never be met: all-join one edge, any-join every edge dead."""
    nodes = {n.id: n for n in g.steps}
    dead = [
        state.steps[e.step].status.terminal and not met(e, nodes[e.step], state.steps[e.step])
        for e in step.needs
    ]
    return bool(dead) and (all(dead) if step.join == Join.ANY else any(dead))


def halting(g: Graph, state: ExecutionState) -> bool:
    """An unhandled failure or rejection holds new steps back (unless a person resumed since)."""
    found = unhandled(g, state, StepStatus.FAILED, Outcome.FAILED) + unhandled(
        g, state, StepStatus.REJECTED, Outcome.REJECTED
    )
    resumed = state.resumed_at
    return any(resumed is None or (state.steps[sid].entered_at or 0.0) >= resumed for sid in found)


def is_handler(step: StepNode) -> bool:
    handling = (Outcome.FAILED, Outcome.REJECTED, Outcome.ALWAYS)
    return any(e.outcome in handling for e in step.needs)


def timed_out(g: Graph, state: ExecutionState, now: float) -> bool:
    base = state.resumed_at if state.resumed_at is not None else state.started_at
    if not g.timeout or base is None:
        return False
    return now >= base + g.timeout


def item_tries(state: StepState, item: int) -> list[Any]:
    """The attempts of one item since the step's and the item's last manual retry."""
    mark = state.item_marks.get(item)
    mine = [a for a in state.attempts[state.retry_base :] if a.item == item]
    return mine[mark.retry_base :] if mark else mine


def in_flight_items(state: StepState) -> set[int]:
    return {
        a.item
        for a in state.attempts[state.retry_base :]
        if a.item is not None and not a.status.terminal
    }


def check_item_start(step: StepNode, state: StepState, item: int) -> None:
    """An item starts within its retries, never twice at once, and (fail_fast without
    min_success) never for the first time after another item failed for good."""
    assert state.items is not None and 0 <= item < state.items, (step.id, item)
    tries = item_tries(state, item)
    assert len(tries) < 1 + step.retries, f"{step.id} item {item}: too many attempts"
    assert not tries or tries[-1].status.terminal, f"{step.id} item {item} started twice"
    fan = step.fan_out
    assert fan is not None
    if fan.fail_fast and fan.min_success is None and not tries:
        for other in range(state.items):
            other_mark = state.item_marks.get(other)
            if other_mark is not None and other_mark.skipped:
                continue  # a person skipped its failure: it counts as succeeded
            last = item_tries(state, other)[-1:]
            final = [a for a in last if a.status == JobStatus.FAILED and not a.retryable]
            assert not final, f"{step.id} item {item} started after item {other} failed"


# -- random graphs -----------------------------------------------------------------------------


@st.composite
def graphs(draw: st.DrawFn) -> Graph:
    nodes: list[StepNode] = []
    for i in range(draw(st.integers(1, 7))):
        kind = draw(st.sampled_from(list(StepType)))
        needs = []
        for s in draw(st.lists(st.integers(0, i - 1), max_size=3, unique=True)) if i else []:
            source = nodes[s]
            choices = sorted({Outcome.SUCCESS, Outcome.ALWAYS} | OUTCOMES_BY_TYPE[source.type])
            needs.append(Edge(source.id, draw(st.sampled_from(choices))))
        job = kind not in GATE_TYPES
        timed = job or kind == StepType.APPROVAL
        fan_out = None
        if job and draw(st.integers(0, 2)) == 0:
            fan_out = FanOut(
                max_parallel=draw(st.sampled_from([None, 1, 2])),
                fail_fast=draw(st.booleans()),
                min_success=draw(st.sampled_from([None, None, 1, 2])),
            )
        nodes.append(
            StepNode(
                id=f"s{i}",
                type=kind,
                needs=tuple(needs),
                join=draw(st.sampled_from(list(Join))),
                retries=draw(st.integers(0, 2)) if job else 0,
                retry_delay=draw(st.sampled_from([0.0, 3.0])) if job else 0.0,
                timeout=draw(st.one_of(st.none(), st.sampled_from([2.0, 6.0]))) if timed else None,
                fan_out=fan_out,
            )
        )
    return Graph(tuple(nodes), timeout=draw(st.one_of(st.none(), st.sampled_from([10.0, 40.0]))))


# -- the outside world and the checks ------------------------------------------------------------


@dataclass
class World:
    """Answers the engine's requests with Hypothesis draws, on a queue of timed events."""

    sim: Sim
    data: Any
    events: list[tuple[float, int, str, tuple[Any, ...]]] = field(default_factory=list)
    seq: int = 0
    timers: set[float] = field(default_factory=set)
    commands: set[Action] = field(default_factory=set)
    started: set[str] = field(default_factory=set)
    left_cancelled: set[str] = field(default_factory=set)
    ended_at: float | None = None

    def __post_init__(self) -> None:
        for n in self.sim.graph.steps:
            if n.fan_out is not None:  # how long its list turns out (None: it cannot be made)
                counts = st.sampled_from([0, 1, 2, 3, 4, 4, None])
                self.sim.item_counts[n.id] = self.data.draw(counts)

    def at(self, delay: float, kind: str, *args: Any) -> None:
        self.seq += 1
        heapq.heappush(self.events, (self.sim.now + delay, self.seq, kind, args))

    def draw(self, strategy: st.SearchStrategy[Any]) -> Any:
        return self.data.draw(strategy)

    def react(self, actions: list[Action]) -> None:
        nodes = {n.id: n for n in self.sim.graph.steps}
        for a in actions:
            if isinstance(a, StartJob):
                begin = self.draw(st.sampled_from([0.0, 1.0, 2.0]))
                status = self.draw(
                    st.sampled_from(
                        [JobStatus.COMPLETED] * 3
                        + [JobStatus.FAILED] * 2
                        + [JobStatus.TIMEOUT, JobStatus.CANCELLED]
                    )
                )
                retryable = self.draw(st.sampled_from([True, True, True, False]))
                self.at(begin, "running", a.step, a.attempt)
                self.at(
                    begin + self.draw(st.integers(0, 8)),
                    "end",
                    a.step,
                    a.attempt,
                    status,
                    retryable,
                )
            elif isinstance(a, CancelJob) and a.force:
                self.at(self.draw(st.sampled_from([0.0, 1.0])), "kill", a.step, a.attempt)
            elif isinstance(a, EvaluateCondition):
                result = self.draw(st.sampled_from([Outcome.TRUE, Outcome.FALSE, Outcome.FAILED]))
                self.at(0.0, "answer", a.step, result)
            elif isinstance(a, StartChildWorkflow):
                result = self.draw(st.sampled_from([Outcome.SUCCEEDED, Outcome.FAILED]))
                self.at(self.draw(st.integers(0, 5)), "answer", a.step, result)
            elif isinstance(a, OpenApproval):
                never = nodes[a.step].timeout is not None and self.draw(st.booleans())
                if not never:
                    result = self.draw(st.sampled_from([Outcome.APPROVED, Outcome.REJECTED]))
                    self.at(self.draw(st.integers(0, 15)), "answer", a.step, result)

    def happen(self, kind: str, args: tuple[Any, ...]) -> None:
        sim = self.sim
        if kind in ("running", "end", "kill"):
            step, number = args[0], args[1]
            attempt = sim.step(step).attempts[number - 1]
            if attempt.status.terminal:
                return
            if kind == "running" and attempt.status == JobStatus.PENDING:
                sim.job_running(step, number)
            elif kind == "end":
                error = f"{args[2].value}"
                sim.job_ends(step, args[2], retryable=args[3], error=error, number=number)
            elif kind == "kill":
                sim.killed(step, number)
        elif kind == "answer":
            st_ = sim.step(args[0])
            if st_.status in (StepStatus.RUNNING, StepStatus.WAITING) and st_.gate_result is None:
                sim.answer(args[0], args[1])
        elif kind == "cancel":
            sim.cancel(args[0])
        elif kind == "cancel item":
            self.cancel_an_item()

    def cancel_an_item(self) -> None:
        """A person cancels one open item (or every one) of a running fanned-out step."""
        sim = self.sim
        running = [
            n
            for n in sim.graph.steps
            if n.fan_out is not None
            and sim.status(n.id) == StepStatus.RUNNING
            and sim.step(n.id).items
            and not sim.execution.terminal
        ]
        if not running:
            return
        step = self.draw(st.sampled_from(running))
        views = view_items(step, sim.step(step.id), sim.now, lost_limit=sim.agent_lost_limit)
        open_ = [v.index for v in views if v.status in OPEN_ITEM]
        if not open_ or sim.state.cancel is not None:
            return
        item = self.draw(st.one_of(st.none(), st.sampled_from(open_)))
        changes = cancel_items(sim.graph, sim.state, step.id, item)
        event("a person cancelled items")
        sim.write(changes, resume=False)

    # -- checks while the engine acts --------------------------------------------------------

    def resume(self, changes: dict[str, StepState]) -> None:
        """A person reset these steps: they may start, be skipped or open a gate again."""
        self.started -= set(changes)
        # Steps a workflow timeout cancelled stay so when their needs died (e.g. an approval
        # the timeout closed); a resumed run may end with them still cancelled.
        self.left_cancelled |= {
            sid
            for sid, s in self.sim.statuses().items()
            if s == StepStatus.CANCELLED and sid not in changes
        }
        self.commands = {c for c in self.commands if getattr(c, "step", None) not in changes}
        self.ended_at = None
        self.timers.clear()

    def on_decision(self, sim: Sim, decision: Decision) -> None:
        actions = decision.actions
        assert decision == sim.decide(), "decide is not deterministic"
        for i, a in enumerate(actions):
            if not isinstance(a, Log):
                assert i + 1 < len(actions) and isinstance(actions[i + 1], Log), a
            if isinstance(a, (*STARTS, CancelJob)):
                key: Action = a
                if isinstance(a, CancelJob):
                    # One stop per attempt, except that a forced stop may cut short the normal
                    # grace of a stop for its timeout or of a person's cancel of one item
                    # (once: it is keyed CANCELLED, not graceful).
                    key = CancelJob(a.step, a.attempt, a.as_status, graceful_stop=a.graceful_stop)
                    earlier = {
                        (c.as_status, c.graceful_stop)
                        for c in self.commands
                        if isinstance(c, CancelJob) and (c.step, c.attempt) == (a.step, a.attempt)
                    }
                    upgrade = a.force and a.as_status == JobStatus.CANCELLED
                    graceful = {(JobStatus.TIMEOUT, False), (JobStatus.CANCELLED, True)}
                    assert not earlier or (len(earlier) == 1 and earlier <= graceful and upgrade), (
                        f"stop repeated: {a}"
                    )
                assert key not in self.commands, f"command repeated: {a}"
                self.commands.add(key)

    def before_apply(self, sim: Sim, a: Action) -> None:
        g, state, nodes = sim.graph, sim.state, {n.id: n for n in sim.graph.steps}
        if isinstance(a, Log):
            return
        assert not state.status.terminal, f"{a} after the execution ended"
        if isinstance(a, STARTS):
            step = nodes[a.step]
            assert needs_met(g, state, step), f"{a.step} started before its needs were met"
            assert state.cancel is None, f"{a.step} started after a cancel"
            assert not timed_out(g, state, sim.now), f"{a.step} started after workflow timeout"
            base = state.steps[a.step].retry_base
            is_retry = isinstance(a, StartJob) and a.attempt > base + 1
            # A fanned-out step that started goes on starting its items.
            is_item = isinstance(a, StartJob) and a.item is not None
            assert is_retry or is_item or is_handler(step) or not halting(g, state), (
                f"{a.step} started while halting"
            )
            if is_item:
                assert isinstance(a, StartJob) and a.item is not None
                check_item_start(step, state.steps[a.step], a.item)
            elif isinstance(a, StartJob):
                allowed = base + 1 + step.retries
                assert a.attempt <= allowed, f"{a.step} attempt {a.attempt} too many"
            self.started.add(a.step)
        elif isinstance(a, SetStepStatus):
            current = state.steps[a.step].status
            assert not current.terminal, f"{a.step} left terminal status {current} for {a.status}"
            if a.status == StepStatus.SKIPPED:
                assert a.step not in self.started, f"{a.step} skipped after it ran"
                assert needs_dead(g, state, nodes[a.step]) or halting(g, state), (
                    f"{a.step} skipped though its needs can still be met"
                )
        elif isinstance(a, SetExecutionStatus) and a.status.terminal:
            self.ended_at = sim.now

    def after_reconcile(self) -> None:
        sim = self.sim
        if sim.execution.terminal:
            return
        assert sim.wake_at is None or sim.wake_at > sim.now, "wake_at is not in the future"
        assert sim.wake_at is None or can_wake(sim.graph), "a due time can_wake did not foresee"
        # Nothing may fall due before wake_at: the runtime would not look again until then.
        before_wake = (sim.now + sim.wake_at) / 2 if sim.wake_at is not None else sim.now + 1e4
        assert not decide(sim.graph, sim.state, before_wake).actions, "missed a due time"
        for n in sim.graph.steps:
            for attempt in sim.step(n.id).attempts:
                overdue = (
                    n.timeout is not None
                    and attempt.started_at is not None
                    and sim.now >= attempt.started_at + n.timeout
                )
                if overdue and not attempt.status.terminal:
                    assert attempt.cancel_requested, f"{n.id} ran past its timeout"
        for n in sim.graph.steps:
            if n.fan_out is not None and n.fan_out.max_parallel is not None:
                running = len(in_flight_items(sim.step(n.id)))
                assert running <= n.fan_out.max_parallel, f"{n.id}: {running} items at once"
        active = [
            sid
            for sid, s in sim.statuses().items()
            if s in (StepStatus.RUNNING, StepStatus.WAITING)
        ]
        assert active, "a running execution with nothing active"
        nodes = {n.id: n for n in sim.graph.steps}
        only_people = all(
            nodes[sid].type == StepType.APPROVAL and sim.step(sid).gate_result is None
            for sid in active
        )
        expected = ExecutionStatus.PAUSED if only_people else ExecutionStatus.RUNNING
        assert sim.execution == expected, f"{sim.execution} with active steps {active}"


def expected_outcome(world: World) -> tuple[ExecutionStatus, str]:
    """The outcome the rules give for the final state, and a phrase its reason must contain."""
    g, state = world.sim.graph, world.sim.state
    assert world.ended_at is not None
    if state.cancel is not None:
        return ExecutionStatus.CANCELLED, "cancelled"
    if timed_out(g, state, world.ended_at):
        return ExecutionStatus.FAILED, "workflow timed out"
    failed = unhandled(g, state, StepStatus.FAILED, Outcome.FAILED)
    if failed:
        return ExecutionStatus.FAILED, failed[0]
    rejected = unhandled(g, state, StepStatus.REJECTED, Outcome.REJECTED)
    if rejected:
        return ExecutionStatus.REJECTED, rejected[0]
    return ExecutionStatus.COMPLETED, ""


def drive(world: World) -> None:
    """Run the world's events until the execution ends, checking the rules after each one."""
    sim = world.sim
    world.react(sim.reconcile())
    world.after_reconcile()
    for _ in range(MAX_EVENTS):
        if sim.execution.terminal:
            return
        if sim.wake_at is not None and sim.wake_at not in world.timers:
            world.timers.add(sim.wake_at)
            world.at(sim.wake_at - sim.now, "timer")
        assert world.events, f"stuck: {sim.execution} with nothing due; steps {sim.statuses()}"
        when, _, kind, args = heapq.heappop(world.events)
        sim.now = max(sim.now, when)
        world.happen(kind, args)
        world.react(sim.reconcile())
        world.after_reconcile()
    raise AssertionError(f"no end after {MAX_EVENTS} events")


def check_end(world: World) -> None:
    """Every step terminal, attempts within bounds, and the outcome the rules give."""
    sim, g = world.sim, world.sim.graph
    statuses = sim.statuses()
    assert all(s.terminal for s in statuses.values()), statuses
    for sid, s in statuses.items():
        if sid not in world.started:
            assert s in NOT_RUN, f"{sid} never started but ended {s}"
            stopped = sim.state.cancel or timed_out(g, sim.state, sim.now)
            assert s == StepStatus.SKIPPED or stopped or sid in world.left_cancelled, sid
    for n in g.steps:
        st_ = sim.step(n.id)
        if n.fan_out is None:
            assert len(st_.attempts) <= st_.retry_base + 1 + n.retries
            continue
        if st_.items is None:
            assert not st_.attempts[st_.retry_base :], n.id
            continue
        done = 0
        for item in range(st_.items):
            tries = item_tries(st_, item)
            assert len(tries) <= 1 + n.retries, (n.id, item)
            assert not tries or tries[-1].status.terminal, (n.id, item)
            done += bool(tries) and tries[-1].status == JobStatus.COMPLETED
            done += bool(st_.item_marks.get(item, None) and st_.item_marks[item].skipped)
        need = st_.items if n.fan_out.min_success is None else n.fan_out.min_success
        if st_.status == StepStatus.SUCCEEDED:
            assert done >= need, (n.id, done, need)
            event("a fanned-out step succeeded")
        if st_.status == StepStatus.FAILED and sim.state.cancel is None:
            assert done < need, (n.id, done, need)
    outcome, phrase = expected_outcome(world)
    event(f"outcome: {outcome.value}" + (" (workflow timeout)" if "timed out" in phrase else ""))
    final = [a for _, a in sim.history if isinstance(a, SetExecutionStatus)][-1]
    assert (final.status, sim.execution) == (outcome, outcome), (final, statuses)
    assert phrase in final.reason, (final, statuses)
    assert sim.decide() == Decision(actions=())
    if outcome == ExecutionStatus.COMPLETED:  # nothing held steps back: every skip was deserved
        for n in g.steps:
            st_ = sim.step(n.id)
            if st_.status == StepStatus.SKIPPED and not st_.user_skipped:
                assert needs_dead(g, sim.state, n), f"{n.id} skipped though its needs are met"


def new_world(g: Graph, data: st.DataObject) -> World:
    sim = Sim(g)
    world = World(sim, data)
    sim.on_decision = world.on_decision
    sim.before_apply = world.before_apply
    return world


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(g=graphs(), data=st.data())
def test_random_runs_follow_the_rules(g: Graph, data: st.DataObject) -> None:
    world = new_world(g, data)
    cancel = data.draw(
        st.one_of(st.none(), st.tuples(st.integers(0, 30), st.sampled_from(list(CancelMode))))
    )
    if cancel is not None:
        world.at(cancel[0], "cancel", cancel[1])
    if data.draw(st.booleans()):
        world.at(data.draw(st.integers(0, 12)), "cancel item")
    drive(world)
    event(f"steps that ran: {len(world.started)} of {len(g.steps)}")
    check_end(world)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(g=graphs(), data=st.data())
def test_manual_retry_and_skip_after_a_failure_follow_the_rules(
    g: Graph, data: st.DataObject
) -> None:
    world = new_world(g, data)
    sim = world.sim
    drive(world)
    for _ in range(2):  # up to two rounds of a person stepping in
        failed = [sid for sid, s in sim.statuses().items() if s == StepStatus.FAILED]
        if sim.execution not in (ExecutionStatus.FAILED, ExecutionStatus.REJECTED) or not failed:
            break
        sim.now += 100.0  # a person looks at the failure, then acts
        items = failed_items(sim, failed)
        on_item: bool = bool(items) and data.draw(st.booleans())
        if on_item:
            step, item = data.draw(st.sampled_from(items))
            if data.draw(st.booleans()):
                try:
                    changes = retry_item(g, sim.state, step, item, now=sim.now)
                except ValueError as exc:
                    # Refused only when fail_fast and another item's failure would fail the
                    # step again at once (the item would never run).
                    fan = g.step(step).fan_out
                    assert fan is not None and fan.fail_fast, exc
                    assert any(other != item for sid, other in items if sid == step), exc
                    assert "fail_fast: item" in str(exc), exc
                    event("a person's retry of one item refused under fail_fast")
                    break
            else:
                changes = skip_item(allow_skip(g), sim.state, step, item, now=sim.now)
            event("a person retried or skipped an item")
        elif data.draw(st.booleans()):
            changes = skip_step_allowed(sim, data.draw(st.sampled_from(failed)))
        elif data.draw(st.booleans()):
            changes = retry_step(g, sim.state, data.draw(st.sampled_from(failed)), now=sim.now)
        else:
            # From here: from the failed step, or from a succeeded one before it (a re-plan).
            succeeded = [sid for sid, s in sim.statuses().items() if s == StepStatus.SUCCEEDED]
            busy = {StepStatus.RUNNING, StepStatus.WAITING}
            candidates = failed + [
                sid
                for sid in succeeded
                if not any(sim.status(d) in busy for d in downstream(g, sid))
            ]
            step = data.draw(st.sampled_from(candidates))
            changes = retry_step(g, sim.state, step, True, now=sim.now)
        event("manual retry or skip")
        world.resume(changes)
        sim.write(changes, ExecutionStatus.RUNNING)
        drive(world)
    check_end(world)


def allow_skip(g: Graph) -> Graph:
    """``g`` as if every step allowed skipping (random graphs leave allow_skip off)."""
    return Graph(tuple(dataclasses.replace(n, allow_skip=True) for n in g.steps), g.timeout)


def skip_step_allowed(sim: Sim, step: str) -> dict[str, StepState]:
    """Skip ``step`` as if its definition allowed it."""
    return skip_step(allow_skip(sim.graph), sim.state, step, now=sim.now)


def failed_items(sim: Sim, failed: list[str]) -> list[tuple[str, int]]:
    """The failed or cancelled items of the failed fanned-out steps among ``failed``."""
    out = []
    for sid in failed:
        node_ = sim.graph.step(sid)
        state = sim.step(sid)
        if node_.fan_out is None or state.items is None:
            continue
        for item in view_items(node_, state, sim.now, lost_limit=sim.agent_lost_limit):
            if item.status in (StepStatus.FAILED, StepStatus.CANCELLED):
                out.append((sid, item.index))
    return out
