"""Fanned-out steps (``for_each``/``matrix``) in the engine: one job per item, bounded
parallelism, fail_fast, min_success, retries per item, and people acting on items."""

from __future__ import annotations

import pytest

from opsflow.engine.control import cancel_items, retry_item, retry_step, skip_item
from opsflow.engine.items import view_items
from opsflow.engine.model import FanOut, StartJob
from opsflow.status import ExecutionStatus, JobStatus, StepStatus
from tests.unit.engine.sim import Sim, graph, node


def _sim(items: int | None, **fan: object) -> Sim:
    retries = int(fan.pop("retries", 0))  # type: ignore[call-overload]
    allow_skip = bool(fan.pop("allow_skip", False))
    g = graph(
        node(
            "fan",
            fan_out=FanOut(**fan),  # type: ignore[arg-type]
            retries=retries,
            allow_skip=allow_skip,
        ),
        node("after", needs=["fan"]),
    )
    sim = Sim(g)
    sim.item_counts["fan"] = items
    sim.reconcile()
    return sim


def _attempt(sim: Sim, item: int) -> int:
    return [a for a in sim.step("fan").attempts if a.item == item][-1].number


def _end(sim: Sim, item: int, status: JobStatus = JobStatus.COMPLETED, **kw: object) -> None:
    sim.job_ends("fan", status, number=_attempt(sim, item), **kw)  # type: ignore[arg-type]
    sim.reconcile()


def _running_items(sim: Sim) -> list[int]:
    return sorted(
        a.item for a in sim.step("fan").attempts if not a.status.terminal and a.item is not None
    )


def test_items_start_in_order_never_more_than_max_parallel() -> None:
    sim = _sim(5, max_parallel=2)
    assert _running_items(sim) == [0, 1]
    _end(sim, 1)
    assert _running_items(sim) == [0, 2]
    for item in (0, 2, 3, 4):
        _end(sim, item)
    assert sim.status("fan") == StepStatus.SUCCEEDED
    assert sim.status("after") == StepStatus.RUNNING
    starts = [a for _, a in sim.history if isinstance(a, StartJob) and a.step == "fan"]
    assert [a.item for a in starts] == [0, 1, 2, 3, 4]


def test_fail_fast_cancels_the_items_not_started_and_fails_the_step() -> None:
    sim = _sim(4, max_parallel=2, fail_fast=True)
    _end(sim, 0, JobStatus.FAILED, error="exit code 1")
    # Item 1 still runs; 2 and 3 never start.
    assert _running_items(sim) == [1]
    _end(sim, 1)
    assert sim.status("fan") == StepStatus.FAILED
    views = view_items(sim.graph.step("fan"), sim.step("fan"), sim.now, lost_limit=3)
    assert [v.status for v in views] == [
        StepStatus.FAILED,
        StepStatus.SUCCEEDED,
        StepStatus.CANCELLED,
        StepStatus.CANCELLED,
    ]
    assert sim.execution == ExecutionStatus.FAILED
    assert any("1 of 4 items failed (item 0" in line for line in sim.logs())


def test_without_fail_fast_every_item_runs_before_the_step_fails() -> None:
    sim = _sim(3, max_parallel=1)
    _end(sim, 0, JobStatus.FAILED)
    _end(sim, 1)
    _end(sim, 2)
    assert sim.status("fan") == StepStatus.FAILED
    assert len([a for a in sim.step("fan").attempts]) == 3


def test_a_failed_item_is_retried_on_its_own() -> None:
    sim = _sim(3, retries=1)
    _end(sim, 1, JobStatus.FAILED)
    assert _running_items(sim) == [0, 1, 2]  # item 1's second attempt
    for item in (0, 1, 2):
        _end(sim, item)
    assert sim.status("fan") == StepStatus.SUCCEEDED
    assert [a.item for a in sim.step("fan").attempts] == [0, 1, 2, 1]


def test_min_success_lets_the_step_succeed_with_failed_items() -> None:
    sim = _sim(3, min_success=2)
    _end(sim, 0, JobStatus.FAILED)
    _end(sim, 1)
    _end(sim, 2)
    assert sim.status("fan") == StepStatus.SUCCEEDED
    assert sim.execution == ExecutionStatus.RUNNING  # "after" runs


def test_a_list_that_cannot_be_worked_out_fails_the_step() -> None:
    sim = _sim(None)
    assert sim.status("fan") == StepStatus.FAILED
    assert any("for_each gave 5" in line for line in sim.logs())


def test_an_empty_list_succeeds_at_once() -> None:
    sim = _sim(0)
    assert sim.status("fan") == StepStatus.SUCCEEDED
    assert sim.status("after") == StepStatus.RUNNING


def test_a_person_cancels_an_item_and_retries_it() -> None:
    sim = _sim(2)
    sim.job_running("fan", _attempt(sim, 0))
    sim.write(cancel_items(sim.graph, sim.state, "fan", 0))
    sim.reconcile()
    sim.killed("fan", _attempt(sim, 0))
    sim.reconcile()
    _end(sim, 1)
    assert sim.status("fan") == StepStatus.FAILED  # item 0 cancelled: not every item succeeded
    sim.now += 10
    sim.write(retry_item(sim.graph, sim.state, "fan", 0, now=sim.now), ExecutionStatus.RUNNING)
    sim.reconcile()
    assert _running_items(sim) == [0]  # only item 0 runs again
    _end(sim, 0)
    assert sim.status("fan") == StepStatus.SUCCEEDED
    assert sim.status("after") == StepStatus.RUNNING


def test_retrying_the_step_runs_only_its_items_that_did_not_succeed() -> None:
    sim = _sim(3)
    _end(sim, 0)
    _end(sim, 1, JobStatus.FAILED)
    _end(sim, 2, JobStatus.FAILED)
    sim.now += 10
    sim.write(retry_step(sim.graph, sim.state, "fan", now=sim.now), ExecutionStatus.RUNNING)
    sim.reconcile()
    assert _running_items(sim) == [1, 2]
    assert sim.step("fan").items == 3  # the recorded list is kept


def test_retry_from_a_step_before_works_the_list_out_again_numbering_after_its_jobs() -> None:
    # The second trial's HIGH 1 (wf/fh): src, then a fanned-out step whose item 1 fails.
    g = graph(node("src"), node("fan", needs=["src"], fan_out=FanOut()))
    sim = Sim(g)
    sim.item_counts["fan"] = 2
    sim.reconcile()
    sim.job_ends("src", JobStatus.COMPLETED)
    sim.reconcile()
    _end(sim, 0)
    _end(sim, 1, JobStatus.FAILED)
    assert sim.execution == ExecutionStatus.FAILED
    sim.now += 10
    sim.item_counts["fan"] = 3  # src gives a longer list this time
    sim.write(retry_step(g, sim.state, "src", True, now=sim.now), ExecutionStatus.RUNNING)
    assert sim.step("fan").items is None  # worked out again once src ends
    sim.reconcile()
    sim.job_ends("src", JobStatus.COMPLETED)
    sim.reconcile()
    assert sim.step("fan").items == 3
    new = [(a.number, a.item) for a in sim.step("fan").attempts[2:]]
    assert new == [(3, 0), (4, 1), (5, 2)]  # after its 2 stored attempts (the sim checks it)
    for item in (0, 1, 2):
        _end(sim, item)
    assert sim.status("fan") == StepStatus.SUCCEEDED
    assert sim.state.status == ExecutionStatus.COMPLETED


def test_retrying_one_item_is_refused_while_fail_fast_holds_another_items_failure() -> None:
    # Trial 2, M3: max_parallel 1, fail_fast; item 1 fails, items 2-3 never start.
    sim = _sim(4, max_parallel=1, fail_fast=True, allow_skip=True)
    _end(sim, 0)
    _end(sim, 1, JobStatus.FAILED)
    assert sim.status("fan") == StepStatus.FAILED
    with pytest.raises(ValueError) as refused:
        retry_item(sim.graph, sim.state, "fan", 3, now=sim.now)
    assert str(refused.value) == (
        "cannot retry item 3 of step 'fan' alone: fail_fast: item 1 failed; "
        "retry item 1 or the step, or skip item 1 first"
    )
    # Retrying the failed item itself is what runs: it, then the items not started.
    sim.write(retry_item(sim.graph, sim.state, "fan", 1, now=sim.now), ExecutionStatus.RUNNING)
    sim.reconcile()
    assert _running_items(sim) == [1]


def test_an_item_retry_does_not_say_the_list_is_worked_out_again() -> None:
    # Trial 2, L13: the recorded list is kept, so the log must not say it is worked out.
    sim = _sim(2)
    _end(sim, 0)
    _end(sim, 1, JobStatus.FAILED)
    assert sim.logs().count("step fan is working out its items") == 1
    sim.write(retry_item(sim.graph, sim.state, "fan", 1, now=sim.now), ExecutionStatus.RUNNING)
    sim.reconcile()
    assert sim.logs().count("step fan is working out its items") == 1
    assert "step fan goes on with its items" in sim.logs()
    assert _running_items(sim) == [1]


def _last_item_fails_twice(sim: Sim) -> None:
    """The trial's run: 4 items, ``retries: 1``, items 0-2 succeed, item 3 fails twice."""
    for item in (0, 1, 2):
        _end(sim, item)
    _end(sim, 3, JobStatus.FAILED, error="exit code 1")
    _end(sim, 3, JobStatus.FAILED, error="exit code 1")


def test_an_items_attempts_are_numbered_on_their_own_in_every_message() -> None:
    sim = _sim(4, retries=1)
    _last_item_fails_twice(sim)
    assert sim.status("fan") == StepStatus.FAILED
    logs = sim.logs()
    assert (
        "step fan item 3 started (attempt 2 of 2): retrying after attempt 1 failed: exit code 1"
        in logs
    )
    failed = [line for line in logs if line.startswith("step fan failed:")]
    assert len(failed) == 1
    assert failed[0].startswith(
        "step fan failed: 1 of 4 items failed (item 3: attempt 2 failed: exit code 1)"
    )
    # The step's attempt numbers (4 and 5 for item 3) never reach a message.
    assert not [line for line in logs if "attempt 4" in line or "attempt 5" in line]


def test_after_a_persons_retry_an_items_attempts_go_on_counting() -> None:
    sim = _sim(4, retries=1)
    _last_item_fails_twice(sim)
    sim.now += 10
    sim.write(retry_item(sim.graph, sim.state, "fan", 3, now=sim.now), ExecutionStatus.RUNNING)
    sim.reconcile()
    _end(sim, 3, JobStatus.FAILED, error="exit code 1")
    _end(sim, 3, JobStatus.FAILED, error="exit code 1")
    logs = sim.logs()
    assert "step fan item 3 started (attempt 3, 1 of 2 since a person's retry)" in logs
    assert (
        "step fan item 3 started (attempt 4, 2 of 2 since a person's retry): "
        "retrying after attempt 3 failed: exit code 1"
    ) in logs
    assert logs[-3].startswith("step fan failed: 1 of 4 items failed (item 3: attempt 4 failed")


def test_a_cancelled_items_job_is_named_by_the_items_attempt() -> None:
    sim = _sim(2, retries=1)
    _end(sim, 0, JobStatus.FAILED, error="exit code 1")
    sim.job_running("fan", _attempt(sim, 0))
    sim.write(cancel_items(sim.graph, sim.state, "fan", 0))
    sim.reconcile()
    assert "step fan: stopping item 0 attempt 2: item 0 cancelled by a person" in sim.logs()


def test_a_skipped_item_is_counted_as_skipped_when_the_step_succeeds() -> None:
    sim = _sim(4, retries=1, allow_skip=True)
    _last_item_fails_twice(sim)
    sim.now += 10
    sim.write(skip_item(sim.graph, sim.state, "fan", 3, now=sim.now), ExecutionStatus.RUNNING)
    sim.reconcile()
    assert sim.status("fan") == StepStatus.SUCCEEDED
    assert "step fan succeeded: 3 of 4 items succeeded, 1 skipped" in sim.logs()
