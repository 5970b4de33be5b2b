"""Edges, joins, skips and starting steps: one test per rule."""

from __future__ import annotations

import pytest

from opsflow.engine import decide
from opsflow.engine.model import (
    EvaluateCondition,
    ExecutionState,
    Log,
    OpenApproval,
    SetExecutionStatus,
    SetStepStatus,
    StartChildWorkflow,
    StartJob,
    StepState,
)
from opsflow.status import ExecutionStatus, Outcome, StepStatus
from tests.unit.engine.sim import Sim, graph, node


def started(sim: Sim, since: int = 0) -> list[str]:
    """Steps started by actions applied since history index ``since``."""
    starts = (StartJob, EvaluateCondition, OpenApproval, StartChildWorkflow)
    return [a.step for a in sim.actions_since(since) if isinstance(a, starts)]


def test_pending_execution_becomes_running_and_records_start() -> None:
    sim = Sim(graph(node("a")), now=5.0)
    actions = sim.reconcile()
    assert actions[0] == SetExecutionStatus(ExecutionStatus.RUNNING, "started")
    assert sim.execution == ExecutionStatus.RUNNING
    assert sim.state.started_at == 5.0


def test_steps_without_needs_start_at_once_in_parallel() -> None:
    sim = Sim(graph(node("a"), node("b"), node("c", needs=["a"])))
    sim.reconcile()
    assert started(sim) == ["a", "b"]
    assert sim.status("c") == StepStatus.PENDING


def test_job_step_starts_with_attempt_one_and_no_separate_status_write() -> None:
    sim = Sim(graph(node("a")))
    actions = sim.reconcile()
    assert StartJob("a", 1) in actions
    assert not [a for a in actions if isinstance(a, SetStepStatus)]
    assert sim.status("a") == StepStatus.RUNNING


def test_step_starts_when_its_need_succeeds() -> None:
    sim = Sim(graph(node("build"), node("deploy", needs=["build"])))
    sim.reconcile()
    sim.succeed("build")
    mark = len(sim.history)
    sim.reconcile()
    assert sim.status("build") == StepStatus.SUCCEEDED
    assert started(sim, mark) == ["deploy"]


def test_chain_settles_in_one_decision_after_each_report() -> None:
    sim = Sim(graph(node("a"), node("b", needs=["a"])))
    sim.reconcile()
    sim.succeed("a")
    decision = sim.decide()
    assert SetStepStatus("a", StepStatus.SUCCEEDED, "attempt 1 completed") in decision.actions
    assert StartJob("b", 1) in decision.actions


def test_join_all_waits_for_every_branch() -> None:
    sim = Sim(graph(node("a"), node("b"), node("c", needs=["a", "b"])))
    sim.reconcile()
    sim.succeed("a")
    sim.reconcile()
    assert sim.status("c") == StepStatus.PENDING
    sim.succeed("b")
    sim.reconcile()
    assert sim.status("c") == StepStatus.RUNNING


def test_join_all_skipped_as_soon_as_one_edge_is_dead() -> None:
    sim = Sim(graph(node("a"), node("b"), node("c", needs=["a", "b"])))
    sim.reconcile()
    sim.fail("a")
    sim.reconcile()
    assert sim.status("c") == StepStatus.SKIPPED
    assert sim.status("b") == StepStatus.RUNNING


def test_join_any_starts_after_first_branch() -> None:
    sim = Sim(graph(node("a"), node("b"), node("c", needs=["a", "b"], join="any")))
    sim.reconcile()
    sim.succeed("b")
    sim.reconcile()
    assert sim.status("c") == StepStatus.RUNNING
    assert sim.status("a") == StepStatus.RUNNING


def test_join_any_skipped_only_when_every_edge_is_dead() -> None:
    g = graph(
        node("a"),
        node("b"),
        node("c", needs=["a", "b"], join="any"),
        node("h", needs=["a.failed", "b.failed"]),
    )
    sim = Sim(g)
    sim.reconcile()
    sim.fail("a")
    sim.reconcile()
    assert sim.status("c") == StepStatus.PENDING
    sim.fail("b")
    sim.reconcile()
    assert sim.status("c") == StepStatus.SKIPPED
    reason = next(
        a.reason for a in sim.actions_since(0) if isinstance(a, SetStepStatus) and a.step == "c"
    )
    assert reason == "none of its needs can be met (a failed, b failed)"


def test_failed_edge_runs_only_on_failure() -> None:
    sim = Sim(graph(node("apply"), node("rollback", needs=["apply.failed"])))
    sim.reconcile()
    sim.fail("apply")
    sim.reconcile()
    assert sim.status("rollback") == StepStatus.RUNNING


def test_failed_edge_skipped_when_source_succeeds() -> None:
    sim = Sim(graph(node("apply"), node("rollback", needs=["apply.failed"])))
    sim.reconcile()
    sim.succeed("apply")
    sim.reconcile()
    assert sim.status("rollback") == StepStatus.SKIPPED
    assert sim.execution == ExecutionStatus.COMPLETED


def test_skip_reason_names_the_dead_edge() -> None:
    sim = Sim(graph(node("build"), node("deploy", needs=["build.succeeded"])))
    sim.reconcile()
    sim.fail("build")
    sim.reconcile()
    assert SetStepStatus(
        "deploy", StepStatus.SKIPPED, "needs build.succeeded but build failed"
    ) in sim.actions_since(0)
    assert "step deploy skipped: needs build.succeeded but build failed" in sim.logs()


def test_skips_propagate_transitively() -> None:
    g = graph(
        node("a"),
        node("b", needs=["a"]),
        node("c", needs=["b"]),
        node("d", needs=["c", "x"], join="any"),
        node("x", needs=["a"]),
        node("h", needs=["a.failed"]),
    )
    sim = Sim(g)
    sim.reconcile()
    sim.fail("a")
    sim.reconcile()
    assert {s: sim.status(s) for s in "bcdx"} == dict.fromkeys("bcdx", StepStatus.SKIPPED)
    assert "step c skipped: needs b but b was skipped" in sim.logs()


def test_approval_opens_gate_and_pauses_execution() -> None:
    sim = Sim(graph(node("plan"), node("approve", "approval", needs=["plan"])))
    sim.reconcile()
    sim.succeed("plan")
    actions = sim.reconcile()
    assert OpenApproval("approve") in actions
    assert sim.status("approve") == StepStatus.WAITING
    assert sim.execution == ExecutionStatus.PAUSED


def test_approved_approval_takes_bare_and_approved_edges() -> None:
    g = graph(
        node("approve", "approval"),
        node("apply", needs=["approve"]),
        node("note", needs=["approve.approved"]),
        node("told-no", needs=["approve.rejected"]),
    )
    sim = Sim(g)
    sim.reconcile()
    sim.approve("approve", "looks fine")
    sim.reconcile()
    assert sim.status("approve") == StepStatus.APPROVED
    assert sim.status("apply") == StepStatus.RUNNING
    assert sim.status("note") == StepStatus.RUNNING
    assert sim.status("told-no") == StepStatus.SKIPPED
    assert sim.execution == ExecutionStatus.RUNNING


def test_rejected_approval_takes_rejected_edge() -> None:
    g = graph(
        node("approve", "approval"),
        node("apply", needs=["approve"]),
        node("told-no", needs=["approve.rejected"]),
    )
    sim = Sim(g)
    sim.reconcile()
    sim.reject("approve", "not today")
    sim.reconcile()
    assert sim.status("approve") == StepStatus.REJECTED
    assert sim.status("apply") == StepStatus.SKIPPED
    assert sim.status("told-no") == StepStatus.RUNNING
    assert "step approve rejected: not today" in sim.logs()


def test_condition_step_requests_evaluation_and_runs_until_answered() -> None:
    sim = Sim(graph(node("check", "condition")))
    actions = sim.reconcile()
    assert EvaluateCondition("check") in actions
    assert sim.status("check") == StepStatus.RUNNING
    assert sim.reconcile() == []


@pytest.mark.parametrize(
    ("result", "runs", "skipped"),
    [(True, {"yes", "yes-too"}, {"no"}), (False, {"no"}, {"yes", "yes-too"})],
)
def test_condition_result_picks_true_or_false_edges(
    result: bool, runs: set[str], skipped: set[str]
) -> None:
    g = graph(
        node("check", "condition"),
        node("yes", needs=["check.true"]),
        node("yes-too", needs=["check"]),
        node("no", needs=["check.false"]),
    )
    sim = Sim(g)
    sim.reconcile()
    sim.condition("check", result)
    sim.reconcile()
    assert sim.status("check") == StepStatus.SUCCEEDED
    assert {s for s in runs | skipped if sim.status(s) == StepStatus.RUNNING} == runs
    assert {s for s in runs | skipped if sim.status(s) == StepStatus.SKIPPED} == skipped


def test_false_condition_completes_execution_without_failure() -> None:
    sim = Sim(graph(node("check", "condition"), node("act", needs=["check"])))
    sim.reconcile()
    sim.condition("check", False)
    sim.reconcile()
    assert sim.execution == ExecutionStatus.COMPLETED
    assert "step act skipped: needs check but check was false" in sim.logs()


def test_condition_that_cannot_be_evaluated_fails() -> None:
    g = graph(node("check", "condition"), node("on-error", needs=["check.failed"]))
    sim = Sim(g)
    sim.reconcile()
    sim.condition("check", None)
    sim.reconcile()
    assert sim.status("check") == StepStatus.FAILED
    assert sim.status("on-error") == StepStatus.RUNNING


def test_always_edge_runs_after_success_and_after_failure() -> None:
    for report in (Sim.succeed, Sim.fail):
        sim = Sim(graph(node("a"), node("cleanup", needs=["a.always"])))
        sim.reconcile()
        report(sim, "a")
        sim.reconcile()
        assert sim.status("cleanup") == StepStatus.RUNNING


def test_always_edge_dead_when_source_skipped() -> None:
    g = graph(
        node("check", "condition"),
        node("act", needs=["check"]),
        node("after", needs=["act.always"]),
    )
    sim = Sim(g)
    sim.reconcile()
    sim.condition("check", False)
    sim.reconcile()
    assert sim.status("after") == StepStatus.SKIPPED


def test_always_edge_met_by_rejection() -> None:
    sim = Sim(graph(node("approve", "approval"), node("report", needs=["approve.always"])))
    sim.reconcile()
    sim.reject("approve")
    sim.reconcile()
    assert sim.status("report") == StepStatus.RUNNING


def test_user_skipped_step_counts_as_success() -> None:
    g = graph(node("a"), node("b", needs=["a"]), node("c", needs=["a.succeeded"]))
    sim = Sim(g)
    sim.state = ExecutionState(
        status=ExecutionStatus.RUNNING,
        created_at=0.0,
        started_at=0.0,
        steps={
            "a": StepState(status=StepStatus.SKIPPED, user_skipped=True),
            "b": StepState(),
            "c": StepState(),
        },
    )
    sim.reconcile()
    assert sim.status("b") == StepStatus.RUNNING
    assert sim.status("c") == StepStatus.RUNNING


def test_child_workflow_starts_and_its_result_sets_step_status() -> None:
    for result, status in (
        (Outcome.SUCCEEDED, StepStatus.SUCCEEDED),
        (Outcome.FAILED, StepStatus.FAILED),
    ):
        sim = Sim(graph(node("child", "workflow")))
        assert StartChildWorkflow("child") in sim.reconcile()
        assert sim.status("child") == StepStatus.RUNNING
        sim.answer("child", result)
        sim.reconcile()
        assert sim.status("child") == status


def test_every_transition_is_logged() -> None:
    sim = Sim(graph(node("a"), node("b", needs=["a.failed"])))
    sim.reconcile()
    sim.succeed("a")
    actions = sim.reconcile()
    for i, action in enumerate(actions):
        if not isinstance(action, Log):
            assert isinstance(actions[i + 1], Log), action


def test_empty_workflow_completes_at_once() -> None:
    sim = Sim(graph())
    sim.reconcile()
    assert sim.execution == ExecutionStatus.COMPLETED


def test_decide_on_settled_state_returns_nothing() -> None:
    sim = Sim(graph(node("a"), node("approve", "approval")))
    sim.reconcile()
    assert decide(sim.graph, sim.state, sim.now).actions == ()
    assert decide(sim.graph, sim.state, sim.now) == decide(sim.graph, sim.state, sim.now)


def test_terminal_execution_returns_nothing() -> None:
    sim = Sim(graph(node("a")))
    sim.reconcile()
    sim.succeed("a")
    sim.reconcile()
    assert sim.execution == ExecutionStatus.COMPLETED
    sim.cancel()
    assert sim.decide().actions == ()
    assert sim.decide().wake_at is None


def test_state_with_unknown_step_is_rejected() -> None:
    state = ExecutionState(ExecutionStatus.RUNNING, 0.0, 0.0, steps={"ghost": StepState()})
    with pytest.raises(ValueError, match="ghost"):
        decide(graph(node("a")), state, 0.0)


def test_running_job_step_without_attempt_is_rejected() -> None:
    state = ExecutionState(
        ExecutionStatus.RUNNING, 0.0, 0.0, steps={"a": StepState(status=StepStatus.RUNNING)}
    )
    with pytest.raises(ValueError, match="no attempt"):
        decide(graph(node("a")), state, 0.0)


def test_join_any_skip_reason_names_each_dead_step_once() -> None:
    g = graph(
        node("a"),
        node("b", needs=["a"]),
        node("h", needs=["a.succeeded", "b.failed", "b.succeeded"], join="any"),
    )
    sim = Sim(g)
    sim.reconcile()
    sim.fail("a")
    sim.reconcile()
    assert sim.status("h") == StepStatus.SKIPPED
    reason = next(
        a.reason for a in sim.actions_since(0) if isinstance(a, SetStepStatus) and a.step == "h"
    )
    assert reason == "none of its needs can be met (a failed, b was skipped)"
