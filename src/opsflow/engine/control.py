"""Manual control of a run: retry a failed step (or retry from it), skip a failed step.

These pure helpers compute the step states the runtime writes; they raise ``ValueError`` with a
message for the person who asked when the request is not allowed. After writing the states the
runtime sets ``resumed_at = now``, puts the execution back to RUNNING if it had ended, and
reconciles; ``decide`` then starts what can run. ``resumed_at`` makes the workflow timeout count
afresh, and lets the run go on past failures the person has already seen (they still decide the
outcome; see ``engine.outcome``).

* ``retry_step``: a FAILED step, in an execution that is running, paused or ended FAILED or
  REJECTED, without a cancel request. The step goes back to PENDING keeping its attempts, with
  ``retry_base = len(attempts)`` so its ``retries`` count afresh. ``from_here`` also resets
  every step downstream of it, approvals included (refused while one of them is running or
  waiting), and may start from a SUCCEEDED step too, or from an APPROVED or REJECTED approval
  (asked again): that is how a failed apply of a saved plan
  is re-planned (retry the plan step from here, approve again, apply). A step that applies a
  saved plan (``plan_from``) whose last attempt found the plan stale is refused with a pointer
  to the plan step, since running the same plan again cannot work.
* ``skip_step``: only a FAILED step whose definition has ``allow_skip``; it becomes SKIPPED with
  ``user_skipped``, so downstream goes on as if it had succeeded.

A fanned-out step (``for_each``/``matrix``) keeps the list recorded when it first started:

* ``retry_step`` on it runs again the items that did not succeed (every item when a succeeded
  step is retried from here), each with its retries counted afresh (``ItemMark.retry_base``);
  a fanned-out step reset because a step upstream of it is retried from here works its list out
  again, since what it was made from may change.
* ``retry_item`` / ``skip_item``: one FAILED or CANCELLED item, in a step that is RUNNING (the
  item runs again, or counts as succeeded, at once) or ended FAILED or CANCELLED (the step goes
  back to PENDING and decides again); skipping needs ``allow_skip``.
* ``cancel_items``: one item, or every item not ended, of a RUNNING step: their jobs are
  stopped and they end CANCELLED (not a success; ``min_success`` may still be met).

Either way, every other step that never got to finish (SKIPPED by the engine, or CANCELLED) is
reset to PENDING when, after the change, its needs are no longer dead: the steps skipped because
the failure blocked them get their chance, while the ones skipped for good reasons (a condition
was false) stay as they are instead of being skipped again.
"""

from __future__ import annotations

import dataclasses

from opsflow.engine.edges import EdgeState, edge_state, join_state
from opsflow.engine.items import Item, attempts_by_item, hopeless, view_items
from opsflow.engine.model import (
    DEFAULT_AGENT_LOST_LIMIT,
    ExecutionState,
    Graph,
    ItemMark,
    StepNode,
    StepState,
)
from opsflow.engine.topology import downstream, topological_order, unknown_step_message
from opsflow.status import ExecutionStatus, StepStatus, StepType

__all__ = [
    "STALE_PLAN",
    "UnknownStep",
    "cancel_items",
    "downstream",
    "retry_item",
    "retry_step",
    "skip_item",
    "skip_step",
]


class UnknownStep(ValueError):
    """The request names a step the workflow does not have (the API answers 404, not 409)."""


# Terraform's own words when asked to apply a plan made against an older state.
STALE_PLAN = "Saved plan is stale"

_ITEM_DONE = frozenset({StepStatus.SUCCEEDED, StepStatus.SKIPPED})
_ITEM_OPEN = frozenset({StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING})

_ANSWERED = (StepStatus.APPROVED, StepStatus.REJECTED)  # an approval's ends
_RESUMABLE = frozenset(
    {
        ExecutionStatus.RUNNING,
        ExecutionStatus.PAUSED,
        ExecutionStatus.FAILED,
        ExecutionStatus.REJECTED,
    }
)


def retry_step(
    graph: Graph,
    state: ExecutionState,
    step: str,
    from_here: bool = False,
    *,
    now: float | None = None,
) -> dict[str, StepState]:
    """The step states to write to run ``step`` again (and, ``from_here``, all after it).

    Raises ``ValueError`` (the message is for the person who asked) when the retry is not
    allowed; see the module docstring.
    """
    allowed: tuple[StepStatus, ...] = (
        (StepStatus.FAILED, StepStatus.SUCCEEDED) if from_here else (StepStatus.FAILED,)
    )
    if from_here and any(n.id == step and n.type is StepType.APPROVAL for n in graph.steps):
        allowed += _ANSWERED  # asked again, and every step after it run again
    current = _check(graph, state, step, "retry", allowed)
    _refuse_stale_plan(graph, current, step)
    node = graph.step(step)
    if node.fan_out is not None and current.items is not None:
        # Its recorded list is kept: the items that did not succeed run again (every item
        # when the step succeeded and is retried from here).
        redo = {
            i.index
            for i in view_items(node, current, now or 0.0, lost_limit=DEFAULT_AGENT_LOST_LIMIT)
            if current.status == StepStatus.SUCCEEDED or i.status not in _ITEM_DONE
        }
        changes = {step: _again(current, redo, now)}
    else:
        changes = {step: _fresh(current, now)}
    if from_here:
        for sid in sorted(downstream(graph, step)):
            other = state.steps.get(sid, StepState())
            if other.status in (StepStatus.RUNNING, StepStatus.WAITING):
                raise ValueError(
                    f"cannot retry from {step!r} while downstream step {sid!r} is "
                    f"{other.status.value}; wait for it to finish or cancel the execution"
                )
            changes[sid] = _fresh(other, now)
    return _reopen(graph, state, changes, now)


def skip_step(
    graph: Graph, state: ExecutionState, step: str, *, now: float | None = None
) -> dict[str, StepState]:
    """The step states to write to skip failed ``step`` so that downstream goes on."""
    current = _check(graph, state, step, "skip", (StepStatus.FAILED,))
    if not graph.step(step).allow_skip:
        raise ValueError(
            f"step {step!r} does not allow skipping; set allow_skip: true on it in the "
            "workflow to permit this"
        )
    skipped = StepState(
        status=StepStatus.SKIPPED,
        attempts=current.attempts,
        entered_at=now,
        gate_result=current.gate_result,
        gate_reason=current.gate_reason,
        retry_base=current.retry_base,
        user_skipped=True,
        items=current.items,
        item_marks=current.item_marks,
    )
    return _reopen(graph, state, {step: skipped}, now)


def _again(current: StepState, redo: set[int], now: float | None) -> StepState:
    """A fanned-out step back to PENDING with its recorded list, the items in ``redo``
    counting their attempts afresh (and no longer skipped or cancelled)."""
    by_item = attempts_by_item(current)
    marks = dict(current.item_marks)
    for index in redo:
        marks[index] = ItemMark(retry_base=len(by_item[index]))
    return StepState(
        status=StepStatus.PENDING,
        attempts=current.attempts,
        entered_at=now,
        retry_base=current.retry_base,
        items=current.items,
        item_marks=marks,
    )


def _item(
    graph: Graph, state: ExecutionState, step: str, item: int, verb: str
) -> tuple[StepNode, StepState, Item]:
    """The fanned-out step and its item a person acts on; ``ValueError`` when there is none."""
    if all(node.id != step for node in graph.steps):
        raise UnknownStep(unknown_step_message(graph, step))
    node = graph.step(step)
    current = state.steps.get(step, StepState())
    if node.fan_out is None:
        raise ValueError(
            f"cannot {verb} item {item} of step {step!r}: it has no for_each or matrix"
        )
    if current.items is None:
        raise ValueError(
            f"cannot {verb} item {item} of step {step!r}: its items were not worked out yet "
            f"(the step is {current.status.value})"
        )
    if not 0 <= item < current.items:
        raise UnknownStep(
            f"step {step!r} has no item {item}; its items are 0 to {current.items - 1}"
            if current.items
            else f"step {step!r} has no items"
        )
    if state.cancel is not None or state.status not in _RESUMABLE:
        raise ValueError(
            f"cannot {verb} item {item} of step {step!r}: the execution is "
            f"{state.status.value}" + (" and being cancelled" if state.cancel is not None else "")
        )
    stopped = state.cancel is not None
    views = view_items(node, current, 0.0, lost_limit=DEFAULT_AGENT_LOST_LIMIT, stopped=stopped)
    return node, current, views[item]


def retry_item(
    graph: Graph, state: ExecutionState, step: str, item: int, *, now: float | None = None
) -> dict[str, StepState]:
    """The step states to write to run one failed or cancelled item again (its retries
    counted afresh); a FAILED step goes back to PENDING with its list, so it runs on."""
    node, current, view = _item(graph, state, step, item, "retry")
    if view.status not in (StepStatus.FAILED, StepStatus.CANCELLED):
        raise ValueError(
            f"cannot retry item {item} of step {step!r}: it is {view.status.value}; only a "
            "failed or cancelled item can be retried"
        )
    if current.status not in (StepStatus.RUNNING, StepStatus.FAILED, StepStatus.CANCELLED):
        raise ValueError(
            f"cannot retry item {item} of step {step!r}: the step is {current.status.value}"
        )
    again = _again(current, {item}, now)
    if current.status == StepStatus.RUNNING:
        again = dataclasses.replace(current, item_marks=again.item_marks)
    _refuse_hopeless(node, again, item)
    if current.status == StepStatus.RUNNING:
        return {step: again}
    return _reopen(graph, state, {step: again}, now)


def _refuse_hopeless(node: StepNode, after: StepState, item: int) -> None:
    """Refuse retrying ``item`` alone when, under ``fail_fast``, other items' failures would
    fail the step again at once (so the item would never run); the message names them."""
    fan = node.fan_out
    if fan is None or not fan.fail_fast:
        return
    views = view_items(node, after, 0.0, lost_limit=DEFAULT_AGENT_LOST_LIMIT)
    if not hopeless(fan, views):
        return
    ended = (StepStatus.FAILED, StepStatus.CANCELLED)
    marks = after.item_marks
    bad = [
        i
        for i in views
        if i.index != item
        and i.status in ended
        # Not the items fail_fast holds back (never started, so they read cancelled).
        and (i.tries or (i.index in marks and marks[i.index].cancelled))
    ]
    if not bad:
        return
    if len(bad) == 1:
        them = f"item {bad[0].index}"
        what = f"{them} {bad[0].status.value}"
    else:
        named = ", ".join(str(i.index) for i in bad[:5]) + (", ..." if len(bad) > 5 else "")
        them, what = "them", f"items {named} did not succeed"
    skip = f", or skip {them}" if node.allow_skip else ""
    raise ValueError(
        f"cannot retry item {item} of step {node.id!r} alone: fail_fast: {what}; "
        f"retry {them} or the step{skip} first"
    )


def skip_item(
    graph: Graph, state: ExecutionState, step: str, item: int, *, now: float | None = None
) -> dict[str, StepState]:
    """The step states to write to skip one failed or cancelled item (it then counts as
    succeeded); needs ``allow_skip`` on the step. A FAILED step is worked out again."""
    node, current, view = _item(graph, state, step, item, "skip")
    if not node.allow_skip:
        raise ValueError(
            f"step {step!r} does not allow skipping; set allow_skip: true on it in the "
            "workflow to permit this"
        )
    if view.status not in (StepStatus.FAILED, StepStatus.CANCELLED):
        raise ValueError(
            f"cannot skip item {item} of step {step!r}: it is {view.status.value}; only a "
            "failed or cancelled item can be skipped"
        )
    marks = dict(current.item_marks)
    marks[item] = dataclasses.replace(marks.get(item, ItemMark()), skipped=True, cancelled=False)
    if current.status == StepStatus.RUNNING:
        return {step: dataclasses.replace(current, item_marks=marks)}
    if current.status not in (StepStatus.FAILED, StepStatus.CANCELLED):
        raise ValueError(
            f"cannot skip item {item} of step {step!r}: the step is {current.status.value}"
        )
    again = dataclasses.replace(
        current, status=StepStatus.PENDING, entered_at=now, retry_at=None, item_marks=marks
    )
    return _reopen(graph, state, {step: again}, now)


def cancel_items(
    graph: Graph,
    state: ExecutionState,
    step: str,
    item: int | None = None,
) -> dict[str, StepState]:
    """The step state to write to cancel one item (``item``) or every item not ended of a
    RUNNING fanned-out step: their jobs are stopped and they end CANCELLED."""
    if item is None:
        if all(node.id != step for node in graph.steps):
            raise UnknownStep(unknown_step_message(graph, step))
        current = state.steps.get(step, StepState())
        if graph.step(step).fan_out is None or current.items is None:
            raise ValueError(
                f"cannot cancel step {step!r}: only the items of a running step with "
                "for_each or matrix can be cancelled; cancel the execution instead"
            )
        targets = range(current.items)
    else:
        _, current, _ = _item(graph, state, step, item, "cancel")
        targets = range(item, item + 1)
    if current.status != StepStatus.RUNNING:
        raise ValueError(f"cannot cancel step {step!r}: it is {current.status.value}")
    node = graph.step(step)
    views = view_items(node, current, 0.0, lost_limit=DEFAULT_AGENT_LOST_LIMIT)
    open_ = [i for i in targets if views[i].status in _ITEM_OPEN]
    if item is not None and not open_:
        raise ValueError(
            f"cannot cancel item {item} of step {step!r}: it is {views[item].status.value}"
        )
    marks = dict(current.item_marks)
    for index in open_:
        marks[index] = dataclasses.replace(marks.get(index, ItemMark()), cancelled=True)
    return {step: dataclasses.replace(current, item_marks=marks)}


def _check(
    graph: Graph,
    state: ExecutionState,
    step: str,
    verb: str,
    allowed: tuple[StepStatus, ...],
) -> StepState:
    if all(node.id != step for node in graph.steps):
        raise UnknownStep(unknown_step_message(graph, step))
    if state.cancel is not None or state.status not in _RESUMABLE:
        raise ValueError(
            f"cannot {verb} step {step!r}: the execution is {state.status.value}"
            + (" and being cancelled" if state.cancel is not None else "")
            + "; start a new run instead"
        )
    current = state.steps.get(step, StepState())
    if current.status not in allowed:
        if verb == "skip":
            hint = "only a failed step can be skipped"
        elif current.status in _ANSWERED and StepStatus.SUCCEEDED not in allowed:
            hint = (
                "to ask the approval again, retry it from here (`opsflow retry EXECUTION "
                f"{step} --from-here`), which also runs every step after it again"
            )
        elif StepStatus.SUCCEEDED in allowed:
            hint = "only a failed or succeeded step can be retried from here"
        elif current.status is StepStatus.SUCCEEDED:
            hint = "only a failed step can be retried (a succeeded one only from here)"
        else:
            hint = "only a failed step can be retried"
        raise ValueError(f"cannot {verb} step {step!r}: it is {current.status.value}; {hint}")
    return current


def _refuse_stale_plan(graph: Graph, current: StepState, step: str) -> None:
    """An apply whose saved plan Terraform found stale needs a new plan, not another try."""
    plan_from = graph.step(step).plan_from
    last = current.last_attempt
    if plan_from is None or last is None or STALE_PLAN not in (last.error or ""):
        return
    raise ValueError(
        f"cannot retry step {step!r}: the plan it applies (saved by step {plan_from!r}) is "
        "stale, because the state changed since the plan was made (by this step's earlier "
        f"attempt or another run), so Terraform refuses it; make a new plan by retrying step "
        f"{plan_from!r} from here (`opsflow retry EXECUTION {plan_from} --from-here`), which "
        "also runs every step after it again, approvals included"
    )


def _fresh(current: StepState, now: float | None) -> StepState:
    """``current`` back to PENDING, keeping its attempts as history."""
    return StepState(
        status=StepStatus.PENDING,
        attempts=current.attempts,
        entered_at=now,
        retry_base=len(current.attempts),
    )


def _reopen(
    graph: Graph, state: ExecutionState, changes: dict[str, StepState], now: float | None
) -> dict[str, StepState]:
    """Add to ``changes`` every unfinished step whose needs are no longer dead after them."""
    nodes = {node.id: node for node in graph.steps}
    for sid in topological_order(graph):
        current = changes.get(sid) or state.steps.get(sid, StepState())
        if sid in changes or current.user_skipped:
            continue
        if current.status not in (StepStatus.SKIPPED, StepStatus.CANCELLED):
            continue
        node = nodes[sid]
        edges = []
        for edge in node.needs:
            source = changes.get(edge.step) or state.steps.get(edge.step, StepState())
            edges.append(edge_state(edge, nodes[edge.step], source.status, source))
        if join_state(node, edges) != EdgeState.DEAD:
            changes[sid] = _fresh(current, now)
    return changes
