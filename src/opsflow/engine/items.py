"""Fanned-out steps: one job per item of a recorded list, each with its own attempts.

A step with ``fan_out`` starts with ``ExpandItems``: the runtime records its list (the count
reaches the engine as ``StepState.items``) or writes ``gate_result`` FAILED with the reason,
which fails the step. From then on the step stays RUNNING while its items run; each item's
attempts (those since the step's ``retry_base`` whose ``item`` is its index) follow the rules
of a job step of its own (``engine.results``): retried while retryable and within
``retries`` (after ``retry_delay``, counted from the attempt's end: an item waiting for a retry
keeps its slot), timed out, stopped by a cancel, failed after the agent was lost too often.

Items start in index order while fewer than ``max_parallel`` run or wait for a retry. The step
may still succeed while its succeeded (or person-skipped) items plus those not ended reach
``min_success`` (every item when unset); once it cannot, ``fail_fast`` starts no more items
(they end CANCELLED). When no item is running, waiting or left to start, the step ends:
SUCCEEDED when enough items succeeded, else CANCELLED under a stop with no item failed, else
FAILED naming the first failed item. An empty list succeeds at once (unless ``min_success``
asks for more).

An attempt's ``number`` counts every job of the step, all items together; what the engine log
and the step's error say is the item's own number (``Item.number_of``: 1 for the item's first
attempt, counting on across people's retries), which is what the API's ``item_attempt`` and the
CLI show too.

People act on items through ``ItemMark`` (``engine.control``): a retry counts an item's
attempts afresh, a skip makes it count as succeeded, a cancel stops its job and ends it
CANCELLED (unless the job completed before the stop reached it: a completed job is a success).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from opsflow.engine.attempts import Stop, end_step, job_in_flight, lost_in_a_row
from opsflow.engine.draft import Draft
from opsflow.engine.model import Attempt, FanOut, ItemMark, StepNode, StepState
from opsflow.engine.wording import describe_attempt
from opsflow.status import JobStatus, Outcome, StepStatus
from opsflow.words import counted

_NO_MARK = ItemMark()


@dataclass(frozen=True)
class Item:
    """Where one item is: its status (step status names), its attempts since a person's last
    retry of it (``tries``), and when its retry falls due (WAITING only)."""

    index: int
    status: StepStatus
    attempts: tuple[Attempt, ...]  # its attempts since the step's retry_base, oldest first
    tries: tuple[Attempt, ...]
    retry_at: float | None = None
    earlier: int = 0  # its attempts before the step's retry_base (a person retried the step)

    def number_of(self, attempt: Attempt) -> int:
        """The item's own number for one of its ``attempts``: 1 for its first ever."""
        return self.earlier + self.attempts.index(attempt) + 1

    @property
    def next_number(self) -> int:
        """The item's own number for its next attempt."""
        return self.earlier + len(self.attempts) + 1


def attempts_by_item(state: StepState) -> list[list[Attempt]]:
    """The attempts of each item of a step whose list is recorded (since ``retry_base``)."""
    count = state.items or 0
    out: list[list[Attempt]] = [[] for _ in range(count)]
    for attempt in state.attempts[state.retry_base :]:
        if attempt.item is not None and 0 <= attempt.item < count:
            out[attempt.item].append(attempt)
    return out


def _retry_due(
    node: StepNode, tries: tuple[Attempt, ...], last: Attempt, lost_limit: int, now: float
) -> float | None:
    """When an ended, not completed, item's next attempt is due; None: it is not retried."""
    if not last.retryable or len(tries) >= 1 + node.retries:
        return None
    if lost_in_a_row(tries) >= lost_limit:
        return None
    return (last.ended_at if last.ended_at is not None else now) + node.retry_delay


def view_items(
    node: StepNode, state: StepState, now: float, *, lost_limit: int, stopped: bool = False
) -> list[Item]:
    """Every item of a fanned-out step as it stands (``stopped``: a cancel or the workflow
    timeout holds the run, so ended items are not retried). Items that never started read
    PENDING while the step runs and CANCELLED once it ended or stopped starting them."""
    fan = node.fan_out or FanOut()
    earlier = _earlier_attempts(state)
    out: list[Item] = []
    for index, attempts in enumerate(attempts_by_item(state)):
        mark = state.item_marks.get(index, _NO_MARK)
        tries = tuple(attempts[mark.retry_base :])
        last = tries[-1] if tries else None
        status: StepStatus
        due = None
        if mark.skipped:
            status = StepStatus.SKIPPED
        elif last is not None and not last.status.terminal:
            status = StepStatus.RUNNING
        elif last is not None and last.status == JobStatus.COMPLETED:
            status = StepStatus.SUCCEEDED  # a job that completed before its cancel landed
        elif mark.cancelled:
            status = StepStatus.CANCELLED
        elif last is None:
            status = StepStatus.PENDING
        else:
            due = None if stopped else _retry_due(node, tries, last, lost_limit, now)
            if due is not None:
                status = StepStatus.WAITING
            elif last.status == JobStatus.CANCELLED and stopped:
                status = StepStatus.CANCELLED
            else:
                status = StepStatus.FAILED
        out.append(Item(index, status, tuple(attempts), tries, due, earlier.get(index, 0)))
    ended = state.status.terminal
    if ended or stopped or (fan.fail_fast and hopeless(fan, out)):
        out = [
            dataclasses.replace(i, status=StepStatus.CANCELLED, retry_at=None)
            if i.status == StepStatus.PENDING or (ended and i.status == StepStatus.WAITING)
            else i
            for i in out
        ]
    return out


def _earlier_attempts(state: StepState) -> dict[int, int]:
    """How many attempts each item made before the step's ``retry_base``."""
    out: dict[int, int] = {}
    for attempt in state.attempts[: state.retry_base]:
        if attempt.item is not None:
            out[attempt.item] = out.get(attempt.item, 0) + 1
    return out


_SUCCESS = frozenset({StepStatus.SUCCEEDED, StepStatus.SKIPPED})
_OPEN = frozenset({StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING})


def needed(fan: FanOut, total: int) -> int:
    """How many items must succeed for the step to succeed."""
    return total if fan.min_success is None else fan.min_success


def hopeless(fan: FanOut, items: Iterable[Item]) -> bool:
    """Whether the step can no longer succeed: too few items succeeded or still open."""
    listed = list(items)
    hope = sum(1 for i in listed if i.status in _SUCCESS or i.status in _OPEN)
    return hope < needed(fan, len(listed))


def counts(items: Iterable[Item]) -> dict[str, int]:
    """How many items are in each status (every status name, zeros included)."""
    out = {status.value: 0 for status in ITEM_STATUSES}
    for item in items:
        out[item.status.value] += 1
    return out


# The statuses an item can be in (step status names), in the order counts list them.
ITEM_STATUSES = (
    StepStatus.PENDING,
    StepStatus.WAITING,
    StepStatus.RUNNING,
    StepStatus.SUCCEEDED,
    StepStatus.FAILED,
    StepStatus.SKIPPED,
    StepStatus.CANCELLED,
)


def settle_fan_out(draft: Draft, node: StepNode, stop: Stop | None) -> None:
    """Apply the news of a RUNNING fanned-out step (see the module docstring)."""
    state = draft.states[node.id]
    if state.items is None:
        if state.gate_result == Outcome.FAILED:
            why = state.gate_reason or "its list could not be worked out"
            end_step(draft, node, StepStatus.FAILED, why)
        elif stop is not None:
            draft.set_step(node.id, StepStatus.CANCELLED, f"{stop.reason} before its items started")
        return
    fan = node.fan_out or FanOut()
    items = view_items(
        node, state, draft.now, lost_limit=draft.agent_lost_limit, stopped=stop is not None
    )
    busy = 0
    for item in items:
        last = item.tries[-1] if item.tries else None
        if item.status == StepStatus.RUNNING and last is not None:
            mark = state.item_marks.get(item.index, _NO_MARK)
            named = f"item {item.index} attempt {item.number_of(last)}"
            if mark.cancelled and not last.cancel_requested:
                why = f"item {item.index} cancelled by a person"
                draft.cancel_job(
                    node.id,
                    last.number,
                    JobStatus.CANCELLED,
                    False,
                    why,
                    named=named,
                    graceful_stop=True,
                )
            else:
                job_in_flight(draft, node, last, stop, named=named)
            busy += 1
        elif item.status == StepStatus.WAITING and item.retry_at is not None and last is not None:
            busy += 1
            if item.retry_at <= draft.now:
                why = f"retrying after {describe_attempt(last, item.number_of(last))}"
                draft.start_item(node.id, item.index, item.next_number, len(item.tries), why)
            else:
                draft.wake(item.retry_at)
    pending = [i for i in items if i.status == StepStatus.PENDING]
    if pending:
        room = len(pending) if fan.max_parallel is None else fan.max_parallel - busy
        for item in pending[: max(room, 0)]:
            draft.start_item(node.id, item.index, item.next_number, 0)
        busy += max(min(room, len(pending)), 0)
        pending = pending[max(room, 0) :]
    if busy or pending:
        return
    _end(draft, node, fan, items, stop)


def _tally(items: list[Item]) -> str:
    """How the items ended, in the user's words: ``all 4 items succeeded``, ``3 of 4 items
    succeeded, 1 skipped``, ``2 of 4 items succeeded, 1 failed, 1 cancelled``."""
    total = len(items)
    tally = counts(items)
    done = tally[StepStatus.SUCCEEDED.value]
    if done == total:
        return "the 1 item succeeded" if total == 1 else f"all {total} items succeeded"
    text = f"{done} of {counted(total, 'item')} succeeded"
    for status in (StepStatus.SKIPPED, StepStatus.FAILED, StepStatus.CANCELLED):
        if tally[status.value]:
            text += f", {tally[status.value]} {status.value}"
    return text


def _end(draft: Draft, node: StepNode, fan: FanOut, items: list[Item], stop: Stop | None) -> None:
    total = len(items)
    good = sum(1 for i in items if i.status in _SUCCESS)
    failed = [i for i in items if i.status == StepStatus.FAILED]
    need = needed(fan, total)
    if good >= need:
        if total == 0:
            reason = "no items to run"
        elif good == total:
            reason = _tally(items)
        else:
            reason = f"{_tally(items)} (min_success {need})"
        draft.set_step(node.id, StepStatus.SUCCEEDED, reason)
        return
    if stop is not None and not failed:
        draft.set_step(node.id, StepStatus.CANCELLED, f"{stop.reason} ({good} of {total} done)")
        return
    if failed:
        first = failed[0]
        last = first.tries[-1] if first.tries else None
        what = describe_attempt(last, first.number_of(last)) if last is not None else "failed"
        reason = f"{len(failed)} of {counted(total, 'item')} failed (item {first.index}: {what})"
    else:
        reason = f"{good} of {counted(total, 'item')} succeeded, {need} needed"
    if stop is not None:
        reason += f"; not retried: {stop.reason}"
    end_step(draft, node, StepStatus.FAILED, reason)
