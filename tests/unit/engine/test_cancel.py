"""Cancel: graceful, force, cleanup; and cancelling a run that never started or already ended."""

from __future__ import annotations

import pytest

from opsflow.engine.model import CancelJob, CancelMode, SetExecutionStatus, SetStepStatus
from opsflow.status import ExecutionStatus, JobStatus, StepStatus
from tests.unit.engine.sim import Sim, graph, node


@pytest.mark.parametrize("mode", [CancelMode.GRACEFUL, CancelMode.CLEANUP])
def test_graceful_cancel_lets_running_job_finish(mode: CancelMode) -> None:
    sim = Sim(graph(node("a"), node("b", needs=["a"])))
    sim.reconcile()
    sim.job_running("a")
    sim.cancel(mode)
    actions = sim.reconcile()
    assert not [a for a in actions if isinstance(a, CancelJob)]
    assert sim.status("b") == StepStatus.CANCELLED
    assert sim.execution == ExecutionStatus.RUNNING
    sim.succeed("a")
    actions = sim.reconcile()
    assert sim.status("a") == StepStatus.SUCCEEDED
    assert sim.status("b") == StepStatus.CANCELLED  # nothing new starts
    assert SetExecutionStatus(ExecutionStatus.CANCELLED, "cancelled") in actions


def test_graceful_cancel_withdraws_undispatched_job() -> None:
    sim = Sim(graph(node("a")))
    sim.reconcile()
    sim.cancel(CancelMode.GRACEFUL, "cancelled by ada")
    actions = sim.reconcile()
    assert CancelJob("a", 1, JobStatus.CANCELLED, False, "cancelled by ada") in actions
    assert sim.status("a") == StepStatus.CANCELLED
    assert sim.execution == ExecutionStatus.CANCELLED


def test_failed_job_is_not_retried_under_cancel() -> None:
    sim = Sim(graph(node("a", retries=3)))
    sim.reconcile()
    sim.job_running("a")
    sim.cancel()
    sim.reconcile()
    sim.fail("a")
    sim.reconcile()
    assert sim.status("a") == StepStatus.FAILED
    assert len(sim.step("a").attempts) == 1
    assert sim.execution == ExecutionStatus.CANCELLED


def test_cancel_rejects_waiting_approval_without_following_rejected_edge() -> None:
    g = graph(node("approve", "approval"), node("told-no", needs=["approve.rejected"]))
    sim = Sim(g)
    sim.reconcile()
    sim.cancel()
    actions = sim.reconcile()
    assert SetStepStatus("approve", StepStatus.REJECTED, "cancelled") in actions
    assert sim.status("told-no") == StepStatus.CANCELLED
    assert sim.execution == ExecutionStatus.CANCELLED


def test_cancel_stops_pending_retry() -> None:
    sim = Sim(graph(node("a", retries=2, retry_delay=30.0)))
    sim.reconcile()
    sim.fail("a")
    sim.reconcile()
    sim.cancel()
    sim.reconcile()
    assert sim.status("a") == StepStatus.CANCELLED
    assert sim.execution == ExecutionStatus.CANCELLED


def test_force_cancel_stops_running_jobs_once() -> None:
    sim = Sim(graph(node("a"), node("b")))
    sim.reconcile()
    sim.job_running("a")
    sim.job_running("b")
    sim.cancel(CancelMode.FORCE)
    actions = sim.reconcile()
    stops = [a for a in actions if isinstance(a, CancelJob)]
    assert stops == [
        CancelJob("a", 1, JobStatus.CANCELLED, True, "cancelled"),
        CancelJob("b", 1, JobStatus.CANCELLED, True, "cancelled"),
    ]
    assert sim.reconcile() == []  # not repeated while the agents stop them
    sim.killed("a")
    sim.succeed("b")  # b finished on its own before the signal reached it
    sim.reconcile()
    assert sim.status("a") == StepStatus.CANCELLED
    assert sim.status("b") == StepStatus.SUCCEEDED
    assert sim.execution == ExecutionStatus.CANCELLED


def test_force_cancel_rejects_approvals_and_cancels_gates() -> None:
    g = graph(node("approve", "approval"), node("check", "condition"), node("child", "workflow"))
    sim = Sim(g)
    sim.reconcile()
    sim.cancel(CancelMode.FORCE)
    sim.reconcile()
    assert sim.statuses() == {
        "approve": StepStatus.REJECTED,
        "check": StepStatus.CANCELLED,
        "child": StepStatus.CANCELLED,
    }
    assert sim.execution == ExecutionStatus.CANCELLED


def test_cancel_of_queued_execution_never_runs_it() -> None:
    sim = Sim(graph(node("a"), node("b", needs=["a"])))
    sim.cancel()
    actions = sim.reconcile()
    assert SetExecutionStatus(ExecutionStatus.RUNNING, "started") not in actions
    assert sim.statuses() == {"a": StepStatus.CANCELLED, "b": StepStatus.CANCELLED}
    assert sim.execution == ExecutionStatus.CANCELLED
    assert sim.state.started_at is None


def test_cancel_wins_over_workflow_timeout_and_timeout_forces_it() -> None:
    sim = Sim(graph(node("a"), timeout=60.0))
    sim.reconcile()
    sim.job_running("a")
    sim.cancel(CancelMode.GRACEFUL)
    assert not [a for a in sim.reconcile() if isinstance(a, CancelJob)]
    assert sim.wake_at == 60.0
    sim.advance(60)
    assert CancelJob("a", 1, JobStatus.CANCELLED, True, "cancelled") in sim.reconcile()
    sim.killed("a")
    sim.reconcile()
    assert sim.execution == ExecutionStatus.CANCELLED


def test_cancel_after_end_does_nothing() -> None:
    sim = Sim(graph(node("a")))
    sim.reconcile()
    sim.fail("a")
    sim.reconcile()
    sim.cancel(CancelMode.FORCE)
    assert sim.reconcile() == []
    assert sim.execution == ExecutionStatus.FAILED
