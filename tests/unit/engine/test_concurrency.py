"""Admission under a workflow's concurrency limit and policy."""

from __future__ import annotations

import pytest

from opsflow.engine.concurrency import Admission, Verdict, admit, release
from opsflow.engine.model import CancelMode
from opsflow.status import ConcurrencyPolicy as P


def test_no_limit_starts() -> None:
    assert admit(P.QUEUE, None, ["a", "b", "c"], []).verdict == Verdict.START


@pytest.mark.parametrize("policy", list(P))
def test_below_limit_starts(policy: P) -> None:
    assert admit(policy, 2, ["a"], []).verdict == Verdict.START


def test_queue_policy_queues_when_full() -> None:
    decision = admit(P.QUEUE, 1, ["a"], ["q1"])
    assert decision.verdict == Verdict.QUEUE
    assert (
        decision.reason
        == "queued at position 2 in the queue: 1 of 1 allowed executions are running"
    )


def test_queue_policy_respects_existing_queue_when_a_slot_is_free() -> None:
    assert admit(P.QUEUE, 2, ["a"], ["q1"]).verdict == Verdict.QUEUE


def test_skip_policy_skips_with_reason() -> None:
    decision = admit(P.SKIP, 1, ["a"], [])
    assert decision == Admission(
        Verdict.SKIP, "skipped by concurrency policy skip: 1 of 1 allowed executions are running"
    )


def test_cancel_running_cancels_oldest_and_supersedes_queue() -> None:
    decision = admit(P.CANCEL_RUNNING, 2, ["old", "newer"], ["q1"])
    assert decision.verdict == Verdict.CANCEL_RUNNING
    assert decision.cancel == ("old", "q1")
    assert decision.cancel_mode == CancelMode.GRACEFUL


def test_release_starts_oldest_queued_when_slots_free() -> None:
    assert release(2, ["a"], ["q1", "q2", "q3"]) == ("q1",)
    assert release(3, [], ["q1", "q2", "q3", "q4"]) == ("q1", "q2", "q3")
    assert release(1, ["a"], ["q1"]) == ()
    assert release(None, ["a"], ["q1", "q2"]) == ("q1", "q2")


def test_invalid_limit_rejected() -> None:
    with pytest.raises(ValueError, match=r"concurrency\.limit must be at least 1, got 0"):
        admit(P.QUEUE, 0, [], [])
