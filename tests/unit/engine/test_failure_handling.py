"""Failure handling, the execution's outcome, and the paused status."""

from __future__ import annotations

from opsflow.engine.model import SetExecutionStatus, SetStepStatus, StartJob
from opsflow.status import ExecutionStatus, StepStatus
from tests.unit.engine.sim import Sim, graph, node


def test_unhandled_failure_fails_execution_after_in_flight_jobs_finish() -> None:
    sim = Sim(graph(node("a"), node("b")))
    sim.reconcile()
    sim.fail("a")
    sim.reconcile()
    assert sim.execution == ExecutionStatus.RUNNING  # b is still running
    sim.succeed("b")
    actions = sim.reconcile()
    assert SetExecutionStatus(ExecutionStatus.FAILED, "step a failed") in actions
    assert sim.status("b") == StepStatus.SUCCEEDED


def test_unhandled_failure_starts_nothing_new() -> None:
    sim = Sim(graph(node("a"), node("b"), node("after-b", needs=["b"])))
    sim.reconcile()
    sim.fail("a")
    sim.reconcile()
    sim.succeed("b")
    actions = sim.reconcile()
    assert StartJob("after-b", 1) not in actions
    assert sim.status("after-b") == StepStatus.SKIPPED
    assert "step after-b skipped: never ran: the execution failed (step a failed)" in sim.logs()
    assert sim.execution == ExecutionStatus.FAILED


def test_failure_handler_runs_during_failing_mode() -> None:
    g = graph(
        node("a"),
        node("b"),
        node("after-b", needs=["b"]),
        node("cleanup", needs=["b.always"]),
        node("c"),
        node("on-c", needs=["c.failed"]),
    )
    sim = Sim(g)
    sim.reconcile()
    sim.fail("a")  # unhandled
    sim.reconcile()
    sim.succeed("b")
    sim.fail("c")
    sim.reconcile()
    assert sim.status("after-b") == StepStatus.PENDING  # held back while handlers run
    assert sim.status("cleanup") == StepStatus.RUNNING
    assert sim.status("on-c") == StepStatus.RUNNING
    sim.succeed("cleanup")
    sim.succeed("on-c")
    sim.reconcile()
    assert sim.status("after-b") == StepStatus.SKIPPED
    assert sim.execution == ExecutionStatus.FAILED


def test_handled_failure_completes_execution() -> None:
    g = graph(
        node("apply"), node("health", needs=["apply"]), node("rollback", needs=["apply.failed"])
    )
    sim = Sim(g)
    sim.reconcile()
    sim.fail("apply")
    sim.reconcile()
    assert sim.status("health") == StepStatus.SKIPPED
    sim.succeed("rollback")
    sim.reconcile()
    assert sim.execution == ExecutionStatus.COMPLETED


def test_failing_handler_fails_execution() -> None:
    sim = Sim(graph(node("apply"), node("rollback", needs=["apply.failed"])))
    sim.reconcile()
    sim.fail("apply")
    sim.reconcile()
    sim.fail("rollback")
    sim.reconcile()
    assert sim.execution == ExecutionStatus.FAILED
    assert sim.state.steps["apply"].status == StepStatus.FAILED


def test_handler_skipped_leaves_failure_unhandled() -> None:
    g = graph(
        node("gate", "condition"),
        node("apply"),
        node("rollback", needs=["apply.failed", "gate"]),
    )
    sim = Sim(g)
    sim.reconcile()
    sim.condition("gate", False)
    sim.fail("apply")
    sim.reconcile()
    assert sim.status("rollback") == StepStatus.SKIPPED
    assert sim.execution == ExecutionStatus.FAILED


def test_unhandled_rejection_rejects_execution() -> None:
    sim = Sim(graph(node("approve", "approval"), node("apply", needs=["approve"])))
    sim.reconcile()
    sim.reject("approve")
    actions = sim.reconcile()
    assert SetExecutionStatus(ExecutionStatus.REJECTED, "approval approve was rejected") in actions


def test_handled_rejection_completes_execution() -> None:
    g = graph(node("approve", "approval"), node("told-no", "notify", needs=["approve.rejected"]))
    sim = Sim(g)
    sim.reconcile()
    sim.reject("approve")
    sim.reconcile()
    sim.succeed("told-no")
    sim.reconcile()
    assert sim.execution == ExecutionStatus.COMPLETED


def test_unhandled_rejection_starts_only_handlers() -> None:
    g = graph(
        node("approve", "approval"),
        node("slow"),
        node("after-slow", needs=["slow"]),
        node("report", needs=["slow.always"]),
    )
    sim = Sim(g)
    sim.reconcile()
    sim.reject("approve")
    sim.reconcile()
    sim.succeed("slow")
    sim.reconcile()
    assert sim.status("after-slow") == StepStatus.PENDING
    assert sim.status("report") == StepStatus.RUNNING
    sim.succeed("report")
    sim.reconcile()
    assert sim.status("after-slow") == StepStatus.SKIPPED
    assert sim.execution == ExecutionStatus.REJECTED


def test_failure_wins_over_rejection() -> None:
    sim = Sim(graph(node("approve", "approval"), node("a")))
    sim.reconcile()
    sim.reject("approve")
    sim.fail("a")
    sim.reconcile()
    assert sim.execution == ExecutionStatus.FAILED


def test_every_step_ends_terminal_after_failure() -> None:
    g = graph(
        node("a"),
        node("b", needs=["a"]),
        node("c", needs=["b"]),
        node("d", needs=["c.failed"]),
        node("other"),
        node("other-next", needs=["other"]),
    )
    sim = Sim(g)
    sim.reconcile()
    sim.fail("a")
    sim.succeed("other")
    sim.reconcile()
    assert all(status.terminal for status in sim.statuses().values()), sim.statuses()
    assert sim.status("other-next") == StepStatus.SKIPPED


def test_retries_continue_in_failing_mode() -> None:
    sim = Sim(graph(node("a"), node("b", retries=1, retry_delay=5.0)))
    sim.reconcile()
    sim.fail("a")
    sim.fail("b")
    sim.reconcile()
    assert sim.status("b") == StepStatus.WAITING
    sim.advance(5)
    assert StartJob("b", 2) in sim.reconcile()
    sim.succeed("b")
    sim.reconcile()
    assert sim.execution == ExecutionStatus.FAILED
    assert sim.status("b") == StepStatus.SUCCEEDED


def test_failed_step_reason_says_it_is_unhandled() -> None:
    sim = Sim(graph(node("a")))
    sim.reconcile()
    sim.fail("a", error="exit code 2")
    actions = sim.reconcile()
    assert (
        SetStepStatus(
            "a",
            StepStatus.FAILED,
            "attempt 1 failed: exit code 2 "
            "(no step handles this failure; only handlers will start from now on)",
        )
        in actions
    )


def test_execution_resumes_after_approval() -> None:
    sim = Sim(graph(node("approve", "approval"), node("apply", needs=["approve"])))
    sim.reconcile()
    assert sim.execution == ExecutionStatus.PAUSED
    sim.approve("approve")
    actions = sim.reconcile()
    assert SetExecutionStatus(ExecutionStatus.RUNNING, "resumed") in actions
    assert sim.statuses()["apply"] == StepStatus.RUNNING


def test_execution_not_paused_while_job_runs_beside_approval() -> None:
    sim = Sim(graph(node("approve", "approval"), node("build")))
    sim.reconcile()
    assert sim.execution == ExecutionStatus.RUNNING
    sim.succeed("build")
    actions = sim.reconcile()
    assert SetExecutionStatus(ExecutionStatus.PAUSED, "waiting for approval of approve") in actions


def test_execution_not_paused_while_retry_waits_beside_approval() -> None:
    sim = Sim(graph(node("approve", "approval"), node("build", retries=1, retry_delay=60.0)))
    sim.reconcile()
    sim.fail("build")
    sim.reconcile()
    assert sim.status("build") == StepStatus.WAITING
    assert sim.execution == ExecutionStatus.RUNNING


def test_paused_status_emitted_only_on_change() -> None:
    sim = Sim(graph(node("a1", "approval"), node("a2", "approval"), node("b", needs=["a1"])))
    sim.reconcile()
    paused = [
        a
        for a in sim.actions_since(0)
        if a == SetExecutionStatus(ExecutionStatus.PAUSED, "waiting for approval of a1, a2")
    ]
    assert len(paused) == 1
    sim.advance(10)
    assert sim.reconcile() == []


def test_open_approval_stays_open_while_execution_is_failing() -> None:
    sim = Sim(graph(node("a"), node("approve", "approval"), node("apply", needs=["approve"])))
    sim.reconcile()
    sim.fail("a")
    sim.reconcile()
    assert sim.status("approve") == StepStatus.WAITING  # in flight, like a running job
    assert sim.execution == ExecutionStatus.PAUSED
    sim.approve("approve")
    sim.reconcile()
    assert sim.status("apply") == StepStatus.SKIPPED  # not a handler: held back, then skipped
    assert sim.state.status == ExecutionStatus.FAILED
