"""What each started step's own news means: job results, retries, timeouts, gate answers.

This is the first half of a decision. It looks at every step that is running or waiting, one
at a time, and settles what the outside world reported about it; it never looks at other steps,
except through ``Stop`` (a cancel or the workflow timeout), which applies to all of them.

Job steps (script, http, terraform, ansible, notify):

* the last attempt COMPLETED -> SUCCEEDED;
* FAILED, TIMEOUT, or CANCELLED by something other than an execution cancel -> retried while
  the attempt is ``retryable`` and the attempts made since ``retry_base`` are fewer than
  ``1 + retries``: WAITING with ``retry_at = ended_at + retry_delay`` (or the next attempt at
  once when that time has already come); otherwise FAILED. Retries go on while the execution is
  failing: a step that has started is in flight until its retry policy is spent;
* while an attempt has ``started_at`` and ``timeout`` has passed: ``CancelJob(as_status=TIMEOUT,
  force=True)``, once (never while ``cancel_requested`` is set). A timed-out attempt is retried
  like a failed one. A ``timeout`` of None or 0 means none. The agent stops a timed-out job
  with the normal grace; a FORCE stop arriving meanwhile issues ``CancelJob(CANCELLED,
  force=True)`` for it once more, so the grace is cut short.
* an attempt whose agent was lost (``agent_lost``: its lease expired or its agent restarted)
  counts against ``retries`` like a failure; when the last ``agent_lost_limit`` attempts since
  ``retry_base`` all lost their agent, the step FAILS ("agent lost N times in a row") whatever
  retries are left, so a job that kills its agent does not loop through the whole pool.

A fanned-out job step (``fan_out``) settles item by item by the same rules; see
``engine.items``.

Conditions end SUCCEEDED when ``gate_result`` is TRUE or FALSE (the result stays in
``gate_result`` and decides which edges are met) and FAILED when it is FAILED (the ``if`` could
not be evaluated). Child workflows end SUCCEEDED or FAILED with their ``gate_result``. Neither
is retried or timed by the engine (a child run has its own workflow timeout).

Approvals end APPROVED or REJECTED with ``gate_result``; an answer already written wins over a
timeout that fell due in the same instant (the runtime's compare-and-set on WAITING and the API's
own deadline check decide that race). Without an answer, ``now >= entered_at + timeout`` rejects
the gate with "timed out after ..." (the runtime records ``responded_via=timeout``).

Under a stop (cancel, or workflow timeout): a finished attempt settles to its own result
(COMPLETED -> SUCCEEDED, CANCELLED -> CANCELLED, FAILED/TIMEOUT -> FAILED) and is never retried;
a step waiting for a retry is CANCELLED; a waiting approval is REJECTED with the stop's reason
(the runtime records ``responded_via=cancel`` when ``state.cancel`` is set, ``timeout``
otherwise), and a condition or child run without an answer is CANCELLED (the runtime cancels the
child execution). In-flight attempts: FORCE (and the workflow timeout) issue
``CancelJob(force=True)`` once; GRACEFUL and CLEANUP withdraw only attempts still PENDING (never
picked up by an agent) with ``CancelJob(force=False)`` and let the others finish.
"""

from __future__ import annotations

from opsflow.engine.attempts import (
    Stop,
    end_step,
    job_in_flight,
    lost_in_a_row,
    step_timeout,
)
from opsflow.engine.draft import Draft
from opsflow.engine.items import settle_fan_out
from opsflow.engine.model import Attempt, StepNode
from opsflow.engine.wording import describe_attempt, format_duration
from opsflow.status import JobStatus, Outcome, StepStatus, StepType


def settle(draft: Draft, stop: Stop | None) -> None:
    """Apply every started step's news to ``draft`` (see the module docstring)."""
    for sid in draft.order:
        node = draft.nodes[sid]
        status = draft.status[sid]
        if status not in (StepStatus.RUNNING, StepStatus.WAITING):
            continue
        if node.type == StepType.APPROVAL:
            _approval(draft, node, stop)
        elif node.type == StepType.CONDITION:
            _condition(draft, node, stop)
        elif node.type == StepType.WORKFLOW:
            _child(draft, node, stop)
        elif node.fan_out is not None:
            settle_fan_out(draft, node, stop)
        elif status == StepStatus.WAITING:
            _retry_wait(draft, node, stop)
        else:
            _job(draft, node, stop)


def _expect(draft: Draft, node: StepNode, status: StepStatus) -> None:
    if draft.status[node.id] != status:
        raise ValueError(
            f"step {node.id!r} is a {node.type.value} step but is {draft.status[node.id].value}; "
            f"the runtime must only move it to {status.value}"
        )


# -- job steps -------------------------------------------------------------------------------


def _job(draft: Draft, node: StepNode, stop: Stop | None) -> None:
    attempt = draft.states[node.id].last_attempt
    if attempt is None:
        raise ValueError(f"step {node.id!r} is running but has no attempt")
    if attempt.status.terminal:
        _job_ended(draft, node, attempt, stop)
    else:
        job_in_flight(draft, node, attempt, stop)


def _job_ended(draft: Draft, node: StepNode, attempt: Attempt, stop: Stop | None) -> None:
    what = describe_attempt(attempt)
    if attempt.status == JobStatus.COMPLETED:
        draft.set_step(node.id, StepStatus.SUCCEEDED, what)
        return
    if stop is not None:
        status = (
            StepStatus.CANCELLED if attempt.status == JobStatus.CANCELLED else StepStatus.FAILED
        )
        draft.set_step(node.id, status, f"{what}; not retried: {stop.reason}")
        return
    state = draft.states[node.id]
    tries = len(state.attempts) - state.retry_base
    lost = lost_in_a_row(state.attempts[state.retry_base :])
    if lost >= draft.agent_lost_limit:
        end_step(draft, node, StepStatus.FAILED, f"{what} (agent lost {lost} times in a row)")
        return
    if attempt.retryable and tries < 1 + node.retries:
        due = (attempt.ended_at if attempt.ended_at is not None else draft.now) + node.retry_delay
        if due <= draft.now:
            draft.start(node.id, f"retrying after {what}")
        else:
            wait = format_duration(due - draft.now)
            draft.set_step(
                node.id,
                StepStatus.WAITING,
                f"{what}; retry {tries} of {node.retries} in {wait}",
                retry_at=due,
            )
            draft.wake(due)
        return
    if not attempt.retryable and tries < 1 + node.retries:
        what += " (not retryable)"
    elif tries > 1:
        what += f" (after {tries} attempts)"
    end_step(draft, node, StepStatus.FAILED, what)


def _retry_wait(draft: Draft, node: StepNode, stop: Stop | None) -> None:
    if stop is not None:
        draft.set_step(node.id, StepStatus.CANCELLED, f"retry not started: {stop.reason}")
        return
    due = draft.retry_at[node.id]
    if due is None or draft.now >= due:
        attempt = draft.states[node.id].last_attempt
        why = f"retry after {describe_attempt(attempt)}" if attempt is not None else "retry"
        draft.start(node.id, why)
    else:
        draft.wake(due)


# -- gates -------------------------------------------------------------------------------------


def _condition(draft: Draft, node: StepNode, stop: Stop | None) -> None:
    _expect(draft, node, StepStatus.RUNNING)
    state = draft.states[node.id]
    result = state.gate_result
    if result in (Outcome.TRUE, Outcome.FALSE):
        draft.set_step(node.id, StepStatus.SUCCEEDED, f"condition is {result.value}")
    elif result == Outcome.FAILED:
        why = state.gate_reason or "no reason given"
        end_step(draft, node, StepStatus.FAILED, f"condition could not be evaluated: {why}")
    elif result is None:
        if stop is not None:
            draft.set_step(node.id, StepStatus.CANCELLED, stop.reason)
    else:
        raise ValueError(f"condition step {node.id!r} has gate_result {result.value!r}")


def _child(draft: Draft, node: StepNode, stop: Stop | None) -> None:
    _expect(draft, node, StepStatus.RUNNING)
    state = draft.states[node.id]
    result = state.gate_result
    if result in (Outcome.SUCCEEDED, Outcome.SUCCESS):
        draft.set_step(
            node.id, StepStatus.SUCCEEDED, state.gate_reason or "child workflow completed"
        )
    elif result == Outcome.FAILED:
        why = state.gate_reason or "child workflow failed"
        end_step(draft, node, StepStatus.FAILED, why)
    elif result is None:
        if stop is not None:
            draft.set_step(node.id, StepStatus.CANCELLED, f"child workflow stopped: {stop.reason}")
    else:
        raise ValueError(f"workflow step {node.id!r} has gate_result {result.value!r}")


def _approval(draft: Draft, node: StepNode, stop: Stop | None) -> None:
    _expect(draft, node, StepStatus.WAITING)
    state = draft.states[node.id]
    result = state.gate_result
    if result == Outcome.APPROVED:
        draft.set_step(node.id, StepStatus.APPROVED, state.gate_reason or "approved")
    elif result == Outcome.REJECTED:
        end_step(draft, node, StepStatus.REJECTED, state.gate_reason or "rejected")
    elif result is not None:
        raise ValueError(f"approval step {node.id!r} has gate_result {result.value!r}")
    elif stop is not None:
        draft.set_step(node.id, StepStatus.REJECTED, stop.reason)
    else:
        timeout = step_timeout(node)
        opened = draft.entered_at[node.id]
        if timeout is None or opened is None:
            return
        if draft.now >= opened + timeout:
            reason = f"timed out after {format_duration(timeout)}"
            end_step(draft, node, StepStatus.REJECTED, reason)
        else:
            draft.wake(opened + timeout)
