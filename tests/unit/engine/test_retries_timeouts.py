"""Retries with delay, per-attempt and approval timeouts, the workflow timeout, wake-ups."""

from __future__ import annotations

import dataclasses

import pytest

from opsflow.engine.model import (
    CancelJob,
    CancelMode,
    SetExecutionStatus,
    SetStepStatus,
    StartJob,
)
from opsflow.engine.wording import format_duration
from opsflow.status import ExecutionStatus, JobStatus, StepStatus
from tests.unit.engine.sim import Sim, graph, node


def test_failed_attempt_waits_for_retry_delay() -> None:
    sim = Sim(graph(node("health", "http", retries=3, retry_delay=10.0)))
    sim.reconcile()
    sim.advance(2).fail("health", error="HTTP 503")
    actions = sim.reconcile()
    assert (
        SetStepStatus(
            "health",
            StepStatus.WAITING,
            "attempt 1 failed: HTTP 503; retry 1 of 3 in 10s",
            retry_at=12.0,
        )
        in actions
    )
    assert sim.status("health") == StepStatus.WAITING
    assert sim.wake_at == 12.0
    assert sim.execution == ExecutionStatus.RUNNING


def test_retry_starts_next_attempt_when_due() -> None:
    sim = Sim(graph(node("health", "http", retries=3, retry_delay=10.0)))
    sim.reconcile()
    sim.fail("health")
    sim.reconcile()
    sim.advance(9.5)
    assert sim.reconcile() == []
    sim.advance(0.5)
    assert StartJob("health", 2) in sim.reconcile()
    assert sim.status("health") == StepStatus.RUNNING


def test_retry_without_delay_starts_next_attempt_at_once() -> None:
    sim = Sim(graph(node("a", retries=1)))
    sim.reconcile()
    sim.fail("a")
    actions = sim.reconcile()
    assert StartJob("a", 2) in actions
    assert not [a for a in actions if isinstance(a, SetStepStatus)]


def test_step_fails_after_last_retry() -> None:
    sim = Sim(graph(node("a", retries=2)))
    sim.reconcile()
    for _ in range(3):
        sim.fail("a")
        sim.reconcile()
    assert len(sim.step("a").attempts) == 3
    assert sim.status("a") == StepStatus.FAILED
    assert sim.execution == ExecutionStatus.FAILED
    assert any("attempt 3 failed: exit code 1 (after 3 attempts)" in m for m in sim.logs())


def test_success_on_retry_succeeds_step() -> None:
    sim = Sim(graph(node("a", retries=2), node("b", needs=["a"])))
    sim.reconcile()
    sim.fail("a")
    sim.reconcile()
    sim.succeed("a")
    sim.reconcile()
    assert sim.status("a") == StepStatus.SUCCEEDED
    assert sim.status("b") == StepStatus.RUNNING


def test_non_retryable_failure_is_not_retried() -> None:
    sim = Sim(graph(node("a", retries=3)))
    sim.reconcile()
    sim.fail("a", retryable=False, error="template error: 'params.x' is undefined")
    sim.reconcile()
    assert sim.status("a") == StepStatus.FAILED
    assert len(sim.step("a").attempts) == 1
    assert any("(not retryable)" in m for m in sim.logs())


def test_job_cancelled_outside_a_cancel_counts_as_failure() -> None:
    sim = Sim(graph(node("a", retries=1)))
    sim.reconcile()
    sim.job_ends("a", JobStatus.CANCELLED)
    assert StartJob("a", 2) in sim.reconcile()
    sim.job_ends("a", JobStatus.CANCELLED)
    sim.reconcile()
    assert sim.status("a") == StepStatus.FAILED


def test_attempt_timeout_cancels_job_as_timeout() -> None:
    sim = Sim(graph(node("slow", timeout=30.0)))
    sim.reconcile()
    sim.advance(1).job_running("slow")
    sim.reconcile()
    assert sim.wake_at == 31.0
    sim.advance(30)
    actions = sim.reconcile()
    assert CancelJob("slow", 1, JobStatus.TIMEOUT, True, "timed out after 30s") in actions


def test_attempt_timeout_not_repeated_once_cancel_requested() -> None:
    sim = Sim(graph(node("slow", timeout=30.0)))
    sim.reconcile()
    sim.job_running("slow")
    sim.advance(30)
    sim.reconcile()
    assert sim.step("slow").attempts[0].cancel_requested
    sim.advance(5)
    assert sim.reconcile() == []
    assert sim.wake_at is None


def test_forced_cancel_cuts_short_a_job_stopping_for_its_timeout() -> None:
    """A timeout stops the job with the normal grace; a forced cancel must not wait it out,
    and asks once; a graceful cancel lets the timeout's stop finish."""
    sim = Sim(graph(node("slow", timeout=30.0)))
    sim.reconcile()
    sim.job_running("slow")
    sim.advance(30)
    sim.reconcile()
    sim.cancel(CancelMode.GRACEFUL)
    assert not [a for a in sim.reconcile() if isinstance(a, CancelJob)]
    sim.cancel(CancelMode.FORCE)
    assert sim.state.cancel is not None
    sim.state = dataclasses.replace(
        sim.state, cancel=dataclasses.replace(sim.state.cancel, mode=CancelMode.FORCE)
    )
    actions = sim.reconcile()
    assert CancelJob("slow", 1, JobStatus.CANCELLED, True, "cancelled") in actions
    assert not [a for a in sim.reconcile() if isinstance(a, CancelJob)]


def test_attempt_timeout_waits_for_the_job_to_start() -> None:
    sim = Sim(graph(node("slow", timeout=30.0)))
    sim.reconcile()
    assert sim.wake_at is None  # queued, not started: no agent is holding it yet
    sim.advance(100)
    assert sim.reconcile() == []


def test_timed_out_attempt_is_retried_then_fails() -> None:
    sim = Sim(graph(node("slow", timeout=30.0, retries=1)))
    sim.reconcile()
    for attempt in (1, 2):
        sim.job_running("slow")
        sim.advance(30)
        sim.reconcile()
        sim.killed("slow")
        actions = sim.reconcile()
        assert sim.step("slow").attempts[attempt - 1].status == JobStatus.TIMEOUT
        if attempt == 1:
            assert StartJob("slow", 2) in actions
    assert sim.status("slow") == StepStatus.FAILED
    assert any("attempt 2 timed out" in m for m in sim.logs())


def test_approval_timeout_rejects() -> None:
    sim = Sim(graph(node("approve", "approval", timeout=3600.0), node("next", needs=["approve"])))
    sim.reconcile()
    assert sim.wake_at == 3600.0
    sim.advance(3600)
    actions = sim.reconcile()
    assert (
        SetStepStatus(
            "approve",
            StepStatus.REJECTED,
            "timed out after 1h "
            "(no step handles this rejection; only handlers will start from now on)",
        )
        in actions
    )
    assert sim.execution == ExecutionStatus.REJECTED


def test_approval_timeout_follows_rejected_edge() -> None:
    g = graph(
        node("approve", "approval", timeout=60.0), node("told-no", needs=["approve.rejected"])
    )
    sim = Sim(g)
    sim.reconcile()
    sim.advance(60)
    sim.reconcile()
    assert sim.status("told-no") == StepStatus.RUNNING


def test_approval_with_zero_timeout_waits_forever() -> None:
    sim = Sim(graph(node("approve", "approval", timeout=0.0)))
    sim.reconcile()
    assert sim.wake_at is None
    sim.advance(10**7)
    assert sim.reconcile() == []
    assert sim.status("approve") == StepStatus.WAITING


def test_approval_answer_wins_over_due_timeout() -> None:
    sim = Sim(graph(node("approve", "approval", timeout=60.0)))
    sim.reconcile()
    sim.advance(60).approve("approve")
    sim.reconcile()
    assert sim.status("approve") == StepStatus.APPROVED
    assert sim.execution == ExecutionStatus.COMPLETED


def test_workflow_timeout_fails_execution_like_force_cancel() -> None:
    g = graph(
        node("long"),
        node("approve", "approval"),
        node("later", needs=["long"]),
        timeout=7200.0,
    )
    sim = Sim(g)
    sim.reconcile()
    sim.job_running("long")
    sim.reconcile()
    assert sim.wake_at == 7200.0
    sim.advance(7200)
    actions = sim.reconcile()
    assert CancelJob("long", 1, JobStatus.CANCELLED, True, "workflow timed out after 2h") in actions
    assert sim.status("approve") == StepStatus.REJECTED
    assert sim.status("later") == StepStatus.CANCELLED
    assert sim.execution == ExecutionStatus.RUNNING  # the job is still being stopped
    sim.killed("long")
    actions = sim.reconcile()
    assert sim.status("long") == StepStatus.CANCELLED
    assert SetExecutionStatus(ExecutionStatus.FAILED, "workflow timed out after 2h") in actions


def test_workflow_timeout_counts_from_resume_after_manual_retry() -> None:
    sim = Sim(graph(node("a"), timeout=100.0))
    sim.reconcile()
    sim.advance(500)
    sim.state = sim.state.__class__(
        status=sim.state.status,
        created_at=0.0,
        started_at=0.0,
        steps=sim.state.steps,
        resumed_at=450.0,
    )
    assert sim.reconcile() == []
    assert sim.wake_at == 550.0


def test_wake_at_is_earliest_due_time() -> None:
    g = graph(
        node("a", timeout=50.0),
        node("b", retries=1, retry_delay=20.0),
        node("approve", "approval", timeout=40.0),
        timeout=1000.0,
    )
    sim = Sim(g)
    sim.reconcile()
    assert sim.wake_at == 40.0  # approval timeout
    sim.job_running("a")
    sim.advance(1).fail("b")
    sim.reconcile()
    assert sim.wake_at == 21.0  # b's retry
    sim.advance(20)
    sim.reconcile()
    assert sim.wake_at == 40.0
    sim.advance(19).approve("approve")
    sim.reconcile()
    assert sim.wake_at == 50.0  # a's attempt timeout


def test_a_step_whose_agent_is_lost_three_times_in_a_row_fails_with_retries_left() -> None:
    sim = Sim(graph(node("a", retries=5)))
    sim.reconcile()
    for number in (1, 2):
        sim.lost("a")
        assert StartJob("a", number + 1) in sim.reconcile()
    sim.lost("a")
    sim.reconcile()
    assert sim.status("a") == StepStatus.FAILED
    assert "agent lost 3 times in a row" in _failed_reason(sim, "a")
    assert sim.execution == ExecutionStatus.FAILED


def test_only_losses_in_a_row_count_and_the_limit_is_a_setting() -> None:
    sim = Sim(graph(node("a", retries=5)), agent_lost_limit=2)
    sim.reconcile()
    sim.lost("a")
    sim.reconcile()
    sim.fail("a")  # an ordinary failure breaks the run of losses
    sim.reconcile()
    sim.lost("a")
    assert StartJob("a", 4) in sim.reconcile()
    sim.lost("a")
    sim.reconcile()
    assert sim.status("a") == StepStatus.FAILED
    assert "agent lost 2 times in a row" in _failed_reason(sim, "a")


def _failed_reason(sim: Sim, step_id: str) -> str:
    return next(
        a.reason
        for _, a in reversed(sim.history)
        if isinstance(a, SetStepStatus) and a.step == step_id and a.status == StepStatus.FAILED
    )


def test_a_job_no_agent_takes_within_its_placement_timeout_fails_with_the_reason() -> None:
    placed = node("dump", pool="eu", labels=(("region", "eu"),), placement_timeout=300.0, retries=2)
    sim = Sim(graph(placed))
    sim.reconcile()
    assert sim.wake_at == 300.0  # a timer from the start of the job, not a poll
    sim.reconcile()
    assert sim.wake_at == 300.0
    sim.advance(299)
    assert sim.reconcile() == []
    sim.advance(1)
    why = "no online agent in pool eu with labels region=eu took the job within 5m"
    reason = f"{why} (placement timeout)"
    actions = sim.reconcile()
    assert CancelJob("dump", 1, JobStatus.FAILED, False, reason) in actions
    ended = [a for a in [*actions, *sim.reconcile()] if isinstance(a, SetStepStatus)]
    assert sim.status("dump") == StepStatus.FAILED  # not retried: no agent would take it
    assert any(a.status == StepStatus.FAILED and why in a.reason for a in ended), ended
    assert sim.execution == ExecutionStatus.FAILED


def test_a_placement_timeout_stops_counting_once_an_agent_takes_the_job() -> None:
    sim = Sim(graph(node("dump", pool="eu", placement_timeout=60.0)))
    sim.reconcile()
    sim.advance(10).job_running("dump")
    sim.reconcile()
    sim.advance(100)
    assert not [a for a in sim.reconcile() if isinstance(a, CancelJob)]
    assert sim.status("dump") == StepStatus.RUNNING


def test_the_wait_before_a_retry_is_rounded_as_people_say_it() -> None:
    sim = Sim(graph(node("a", retries=2, retry_delay=2.0)))
    sim.reconcile()
    sim.fail("a", error="boom")
    sim.advance(0.00025)  # the engine got to the failure a moment after it was reported
    reasons = [a.reason for a in sim.reconcile() if isinstance(a, SetStepStatus)]
    assert reasons == ["attempt 1 failed: boom; retry 1 of 2 in 2s"]


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (1.99975, "2s"),
        (2.46, "2.5s"),
        (0.25, "0.25s"),
        (0.123456, "0.12s"),
        (9.96, "10s"),
        (59.7, "1m"),
        (90, "1m30s"),
        (7200.4, "2h"),
    ],
)
def test_durations_in_engine_words_are_rounded(seconds: float, said: str) -> None:
    assert format_duration(seconds) == said


def test_a_placement_timeout_says_why_the_job_waited_when_the_runtime_knows() -> None:
    placed = node("dump", pool="eu", labels=(("gpu", "1"),), placement_timeout=6.0)
    sim = Sim(graph(placed))
    sim.reconcile()
    sim.advance(6)
    # What the runtime hands in once the placement time is up: the job's pending reason.
    sim._put_attempt("dump", unplaced_reason="waiting for a free slot on pool eu (1/1 busy)")
    reason = (
        "no agent took the job within 6s (placement timeout): "
        "waiting for a free slot on pool eu (1/1 busy)"
    )
    assert CancelJob("dump", 1, JobStatus.FAILED, False, reason) in sim.reconcile()
    sim.reconcile()
    assert sim.status("dump") == StepStatus.FAILED
    assert reason in _failed_reason(sim, "dump")
