"""Manual control: retry a step, retry from here, skip; and what each may not do."""

from __future__ import annotations

import pytest

from opsflow.engine.control import STALE_PLAN, downstream, retry_step, skip_step
from opsflow.engine.model import CancelMode, StartJob
from opsflow.status import ExecutionStatus, StepStatus, StepType
from tests.unit.engine.sim import Sim, graph, node

DEPLOY = graph(
    node("plan"),
    node("apply", needs=["plan"], retries=1, allow_skip=True),
    node("health", needs=["apply"]),
    node("notify", needs=["health"]),
    node("rollback", needs=["apply.failed"]),
    node("audit"),
    node("audit-next", needs=["audit"]),
)


def failed_deploy() -> Sim:
    """plan succeeds, apply fails twice (retries spent), rollback succeeds: run ends COMPLETED
    only if nothing else failed; here audit fails too, so it ends FAILED."""
    sim = Sim(DEPLOY)
    sim.reconcile()
    sim.succeed("plan")
    sim.reconcile()
    sim.fail("apply")
    sim.reconcile()
    sim.fail("apply")
    sim.fail("audit")
    sim.reconcile()
    sim.succeed("rollback")
    sim.reconcile()
    assert sim.execution == ExecutionStatus.FAILED
    sim.advance(60)  # a person looks at it and decides
    return sim


def test_downstream_is_transitive_over_every_edge_kind() -> None:
    assert downstream(DEPLOY, "plan") == {"apply", "health", "notify", "rollback"}
    assert downstream(DEPLOY, "notify") == set()


def test_retry_failed_step_starts_new_attempt_and_downstream_proceeds() -> None:
    sim = failed_deploy()
    changes = retry_step(DEPLOY, sim.state, "apply", now=sim.now)
    assert changes["apply"].status == StepStatus.PENDING
    assert changes["apply"].retry_base == 2
    assert len(changes["apply"].attempts) == 2  # history kept
    assert {"health", "notify"} <= set(changes)
    assert "rollback" not in changes  # it ran; it stays as it was
    sim.write(changes, ExecutionStatus.RUNNING)
    assert sim.state.resumed_at == 60.0
    assert StartJob("apply", 3) in sim.reconcile()
    sim.succeed("apply")
    sim.reconcile()
    sim.succeed("health")
    sim.reconcile()
    sim.succeed("notify")
    sim.reconcile()
    assert sim.status("rollback") == StepStatus.SUCCEEDED
    assert sim.execution == ExecutionStatus.FAILED  # audit's failure is still unhandled


def test_retry_counts_retries_from_retry_base() -> None:
    sim = failed_deploy()
    sim.write(retry_step(DEPLOY, sim.state, "apply"), ExecutionStatus.RUNNING)
    sim.reconcile()
    sim.fail("apply")
    assert StartJob("apply", 4) in sim.reconcile()  # retries: 1 again after the manual retry
    sim.fail("apply")
    sim.reconcile()
    assert sim.status("apply") == StepStatus.FAILED
    assert len(sim.step("apply").attempts) == 4


def test_retry_resets_steps_that_never_ran_because_the_run_failed() -> None:
    sim = failed_deploy()
    assert sim.status("audit-next") == StepStatus.SKIPPED
    changes = retry_step(DEPLOY, sim.state, "audit")
    assert set(changes) == {"audit", "audit-next"}
    sim.write(changes, ExecutionStatus.RUNNING)
    sim.reconcile()
    sim.succeed("audit")
    sim.reconcile()
    assert sim.status("audit-next") == StepStatus.RUNNING
    # apply's failure is handled by rollback: health stays skipped for a good reason.
    assert sim.status("health") == StepStatus.SKIPPED


def test_retry_leaves_steps_skipped_for_good_reason_alone() -> None:
    g = graph(node("check", "condition"), node("act", needs=["check"]), node("a"))
    sim = Sim(g)
    sim.reconcile()
    sim.condition("check", False)
    sim.fail("a")
    sim.reconcile()
    assert sim.execution == ExecutionStatus.FAILED
    assert set(retry_step(g, sim.state, "a")) == {"a"}


def test_retry_from_here_resets_downstream() -> None:
    sim = failed_deploy()
    changes = retry_step(DEPLOY, sim.state, "apply", from_here=True)
    assert {"apply", "health", "notify", "rollback"} <= set(changes)
    assert changes["rollback"].status == StepStatus.PENDING
    assert changes["rollback"].retry_base == 1
    sim.write(changes, ExecutionStatus.RUNNING)
    sim.reconcile()
    sim.succeed("apply")
    sim.reconcile()
    assert sim.status("rollback") == StepStatus.SKIPPED
    assert sim.status("health") == StepStatus.RUNNING


def test_retry_in_running_execution_clears_failing_mode() -> None:
    g = graph(node("a"), node("slow"), node("after-slow", needs=["slow"]))
    sim = Sim(g)
    sim.reconcile()
    sim.fail("a")
    sim.reconcile()
    sim.write(retry_step(g, sim.state, "a"))
    sim.reconcile()
    sim.succeed("slow")
    sim.reconcile()
    assert sim.status("after-slow") == StepStatus.RUNNING
    assert sim.status("a") == StepStatus.RUNNING


def test_retry_rejects_step_that_did_not_fail() -> None:
    sim = failed_deploy()
    with pytest.raises(
        ValueError, match="'plan': it is succeeded; only a failed step can be retried"
    ):
        retry_step(DEPLOY, sim.state, "plan")


def test_retry_from_here_refuses_while_downstream_running() -> None:
    g = graph(node("a"), node("handler", needs=["a.failed"]))
    sim = Sim(g)
    sim.reconcile()
    sim.fail("a")
    sim.reconcile()
    assert sim.status("handler") == StepStatus.RUNNING
    with pytest.raises(ValueError, match="downstream step 'handler' is running"):
        retry_step(g, sim.state, "a", from_here=True)


def test_retry_refused_on_cancelled_execution() -> None:
    sim = Sim(graph(node("a")))
    sim.reconcile()
    sim.job_running("a")
    sim.cancel()
    sim.reconcile()
    sim.fail("a")
    sim.reconcile()
    assert sim.execution == ExecutionStatus.CANCELLED
    with pytest.raises(ValueError, match="execution is cancelled"):
        retry_step(sim.graph, sim.state, "a")


def test_retry_refused_while_cancel_is_under_way() -> None:
    sim = Sim(graph(node("a"), node("b")))
    sim.reconcile()
    sim.job_running("b")
    sim.fail("a")
    sim.cancel(CancelMode.GRACEFUL)
    sim.reconcile()
    with pytest.raises(ValueError, match="being cancelled"):
        retry_step(sim.graph, sim.state, "a")


def test_skip_requires_allow_skip() -> None:
    sim = failed_deploy()
    with pytest.raises(ValueError, match="set allow_skip: true"):
        skip_step(DEPLOY, sim.state, "audit")


def test_skip_failed_step_lets_downstream_run() -> None:
    sim = failed_deploy()
    changes = skip_step(DEPLOY, sim.state, "apply")
    assert changes["apply"].status == StepStatus.SKIPPED
    assert changes["apply"].user_skipped
    sim.write(changes, ExecutionStatus.RUNNING)
    sim.reconcile()
    assert sim.status("health") == StepStatus.RUNNING


def test_skip_only_a_failed_step() -> None:
    sim = failed_deploy()
    with pytest.raises(ValueError, match="only a failed step can be skipped"):
        skip_step(DEPLOY, sim.state, "plan")


def test_unknown_step_is_rejected_with_the_known_ones() -> None:
    sim = failed_deploy()
    with pytest.raises(ValueError, match="unknown step 'nope'; this workflow's steps are: plan"):
        retry_step(DEPLOY, sim.state, "nope")
    with pytest.raises(ValueError, match="unknown step 'nope'"):
        downstream(DEPLOY, "nope")


def test_resumed_execution_is_not_held_back_by_failures_seen_before() -> None:
    g = graph(node("a"), node("b"), node("after-b", needs=["b"]))
    sim = Sim(g)
    sim.reconcile()
    sim.fail("a")
    sim.fail("b")
    sim.reconcile()
    assert sim.execution == ExecutionStatus.FAILED
    sim.advance(30)
    sim.write(retry_step(g, sim.state, "b", now=sim.now), ExecutionStatus.RUNNING)
    sim.reconcile()
    sim.succeed("b")
    sim.reconcile()
    assert sim.status("after-b") == StepStatus.RUNNING  # a's failure was seen before the retry
    sim.succeed("after-b")
    sim.reconcile()
    assert sim.execution == ExecutionStatus.FAILED  # ...and still decides the outcome


IAC = graph(
    node("plan", StepType.TERRAFORM),
    node("approve", StepType.APPROVAL, needs=["plan"]),
    node("apply", StepType.TERRAFORM, needs=["approve"], plan_from="plan"),
)


def failed_apply(error: str) -> Sim:
    """plan succeeds, approve is approved, apply fails with ``error``: the run ends FAILED."""
    sim = Sim(IAC)
    sim.reconcile()
    sim.succeed("plan")
    sim.reconcile()
    sim.approve("approve")
    sim.reconcile()
    sim.fail("apply", retryable=STALE_PLAN not in error, error=error)
    sim.reconcile()
    assert sim.execution == ExecutionStatus.FAILED
    sim.advance(60)
    return sim


def test_retry_from_here_on_a_succeeded_step_replans_and_asks_the_approval_again() -> None:
    sim = failed_apply("Error: creating the web server: quota exceeded")
    changes = retry_step(IAC, sim.state, "plan", from_here=True, now=sim.now)
    assert set(changes) == {"plan", "approve", "apply"}
    assert all(st.status == StepStatus.PENDING for st in changes.values())
    assert len(changes["plan"].attempts) == 1 and changes["plan"].retry_base == 1
    sim.write(changes, ExecutionStatus.RUNNING)
    assert StartJob("plan", 2) in sim.reconcile()
    sim.succeed("plan")
    sim.reconcile()
    assert sim.status("approve") == StepStatus.WAITING  # asked again, not the old answer
    sim.approve("approve")
    assert StartJob("apply", 2) in sim.reconcile()
    sim.succeed("apply")
    sim.reconcile()
    assert sim.execution == ExecutionStatus.COMPLETED


def test_retry_of_a_succeeded_step_without_from_here_is_refused_with_the_way_on() -> None:
    sim = failed_apply("boom")
    with pytest.raises(ValueError, match="a succeeded one only from here"):
        retry_step(IAC, sim.state, "plan")


def test_retry_of_an_apply_whose_saved_plan_is_stale_points_to_the_plan_step() -> None:
    sim = failed_apply("Error: Saved plan is stale")
    for from_here in (False, True):
        with pytest.raises(ValueError) as refused:
            retry_step(IAC, sim.state, "apply", from_here, now=sim.now)
        message = str(refused.value)
        assert "is stale" in message
        assert "opsflow retry EXECUTION plan --from-here" in message


def test_retry_of_an_apply_that_failed_for_another_reason_is_allowed() -> None:
    sim = failed_apply("Error: creating the web server: quota exceeded")
    assert set(retry_step(IAC, sim.state, "apply", now=sim.now)) == {"apply"}


def rejected_gate() -> Sim:
    """plan succeeds, approve is rejected: the run ends REJECTED."""
    sim = Sim(IAC)
    sim.reconcile()
    sim.succeed("plan")
    sim.reconcile()
    sim.reject("approve")
    sim.reconcile()
    assert sim.execution == ExecutionStatus.REJECTED
    sim.advance(60)
    return sim


def test_retry_of_a_rejected_approval_points_to_from_here() -> None:
    sim = rejected_gate()
    with pytest.raises(ValueError) as refused:
        retry_step(IAC, sim.state, "approve", now=sim.now)
    message = str(refused.value)
    assert message.startswith("cannot retry step 'approve': it is rejected; ")
    assert "`opsflow retry EXECUTION approve --from-here`" in message


def test_retry_from_here_of_a_rejected_approval_asks_it_again() -> None:
    sim = rejected_gate()
    changes = retry_step(IAC, sim.state, "approve", from_here=True, now=sim.now)
    assert set(changes) == {"approve", "apply"}
    sim.write(changes, ExecutionStatus.RUNNING)
    sim.reconcile()
    assert sim.status("approve") == StepStatus.WAITING  # asked again, not the old answer
    sim.approve("approve")
    assert StartJob("apply", 1) in sim.reconcile()
    sim.succeed("apply")
    sim.reconcile()
    assert sim.execution == ExecutionStatus.COMPLETED
