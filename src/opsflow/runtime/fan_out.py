"""Fanned-out steps in the runtime: work out and record the list, render an item's names,
gather the items' outputs when the step ends (the rules are ``engine.items``').

The list is rendered once, when the engine first asks (``ExpandItems``), from the run's
committed state, and written to the step's row in the same transaction; a list already
recorded (after a restart, or when a person retries the step) is never rendered again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from opsflow.engine import model as m
from opsflow.engine.items import counts, view_items
from opsflow.errors import TemplateError
from opsflow.spec.fan_out import FanOutError, items_from_value, matrix_items, split_matrix
from opsflow.spec.sandbox import budget
from opsflow.spec.template import evaluate_value, render_value
from opsflow.status import JobPurpose, JobStatus, StepStatus
from opsflow.store import jobs as jobs_store
from opsflow.store.jobs import Job
from opsflow.store.runs import Execution, Step


def attempt_of(job: Job) -> m.Attempt:
    """The engine's view of one job (an attempt of its step)."""
    return m.Attempt(
        number=job.attempt,
        status=job.status,
        created_at=job.created_at,
        started_at=job.started_at,
        ended_at=job.ended_at,
        retryable=job.retryable,
        error=job.error,
        agent_lost=jobs_store.agent_lost(job.status, job.error),
        cancel_requested=job.cancel_requested,
        # Stopping with the normal grace: its timeout, or a person's (not forced) cancel.
        stopping_for_timeout=job.cancel_requested
        and (job.cancel_as == JobStatus.TIMEOUT or not job.cancel_force),
        item=job.item,
    )


def item_attempts(jobs: Iterable[Job]) -> dict[str, int]:
    """Each item job's own attempt number, by job id: 1 for the item's first job, counting
    on across people's retries (a job's ``attempt`` counts every job of its step, all items
    together). What the engine's messages call the attempt (``engine.items``)."""
    seen: dict[int, int] = {}
    out: dict[str, int] = {}
    for job in sorted(jobs, key=lambda j: j.attempt):
        if job.item is not None and job.purpose == JobPurpose.RUN:
            seen[job.item] = seen.get(job.item, 0) + 1
            out[job.id] = seen[job.item]
    return out


def work_out(raw: Mapping[str, Any], context: Mapping[str, Any]) -> list[Any]:
    """The items of a step's ``for_each`` or ``matrix`` over ``context``. Raises
    ``FanOutError`` or ``TemplateError`` with a message for the step's error."""
    if raw.get("for_each") is not None:
        return _values(raw["for_each"], context, "for_each")
    matrix = raw.get("matrix") or {}
    dims, extras = split_matrix(matrix)
    with budget():
        lists = {key: _values(value, context, f"matrix.{key}") for key, value in dims.items()}
        rendered_extras = render_value(extras, context, where="matrix")
    return matrix_items(lists, rendered_extras)


def _values(value: Any, context: Mapping[str, Any], where: str) -> list[Any]:
    if isinstance(value, str):
        value = evaluate_value(value, context, where=where)
    else:
        value = render_value(value, context, where=where)
    return items_from_value(value, where=where)


def expansion_failure(exc: FanOutError | TemplateError) -> str:
    """The step's error when its list cannot be worked out."""
    message = exc.message if isinstance(exc, TemplateError) else str(exc)
    return f"its items could not be worked out: {message}"


def item_names(raw: Mapping[str, Any], items: list[Any], index: int) -> dict[str, Any]:
    """What the templates of item ``index`` read: ``item``, ``index``, and for a matrix
    ``matrix`` (the combination; {} for a for_each)."""
    value = items[index]
    combo = value if raw.get("matrix") is not None and isinstance(value, dict) else {}
    return {"item": value, "index": index, "matrix": combo}


def marks_of(stored: Mapping[str, Any] | None) -> dict[int, m.ItemMark]:
    """The engine's item marks from a step row's ``item_marks`` JSON."""
    return {
        int(key): m.ItemMark(
            retry_base=int(value.get("retry_base", 0)),
            skipped=bool(value.get("skipped")),
            cancelled=bool(value.get("cancelled")),
        )
        for key, value in (stored or {}).items()
    }


def marks_json(marks: Mapping[int, m.ItemMark]) -> dict[str, Any] | None:
    """A step row's ``item_marks`` JSON (None when there are none)."""
    if not marks:
        return None
    return {
        str(index): {
            "retry_base": mark.retry_base,
            "skipped": mark.skipped,
            "cancelled": mark.cancelled,
        }
        for index, mark in sorted(marks.items())
    }


def gathered_outputs(
    session: Session,
    execution: Execution,
    step: Step,
    node: m.StepNode,
    state: m.StepState,
    now: float,
    *,
    lost_limit: int,
    stopped: bool,
) -> dict[str, Any]:
    """A fanned-out step's outputs when it ends: ``items`` in item order, each
    ``{index, item, status, outputs}`` (its last attempt's outputs), and how many items ended
    in each status (``succeeded``, ``failed``, ``cancelled``, ``skipped``) with ``total``."""
    values = step.items if step.items is not None else []
    views = view_items(node, state, now, lost_limit=lost_limit, stopped=stopped)
    outputs = jobs_store.outputs_by_attempt(session, execution.id, step.step_id)
    items = []
    for view in views:
        last = view.attempts[-1] if view.attempts else None
        items.append(
            {
                "index": view.index,
                "item": values[view.index] if view.index < len(values) else None,
                "status": view.status.value,
                "outputs": outputs.get(last.number, {}) if last is not None else {},
            }
        )
    tally = counts(views)
    return {
        "items": items,
        "total": len(views),
        **{k: tally[k] for k in ("succeeded", "failed", "cancelled", "skipped")},
    }


def item_rows(
    step: Step,
    node: m.StepNode,
    jobs: list[Job],
    now: float,
    *,
    lost_limit: int,
    stopped: bool,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """What the API shows of a fanned-out step's items (``step`` read with its list, ``jobs``
    every job of the step): one row per item, in order, and the counts by status."""
    runs = sorted((j for j in jobs if j.purpose == JobPurpose.RUN), key=lambda j: j.attempt)
    state = m.StepState(
        status=step.status,
        attempts=tuple(attempt_of(j) for j in runs),
        retry_base=step.retry_base,
        items=step.item_count,
        item_marks=marks_of(step.item_marks),
    )
    by_number = {j.attempt: j for j in runs}
    values = step.items or []
    rows = []
    views = view_items(node, state, now, lost_limit=lost_limit, stopped=stopped)
    for view in views:
        last = by_number.get(view.attempts[-1].number) if view.attempts else None
        rows.append(
            {
                "index": view.index,
                "item": values[view.index] if view.index < len(values) else None,
                "status": view.status,
                "attempts": view.earlier + len(view.attempts),
                "job_id": last.id if last else None,
                "started_at": last.started_at if last else None,
                "ended_at": last.ended_at if last else None,
                "retry_at": view.retry_at if view.status == StepStatus.WAITING else None,
                "outputs": last.outputs if last else {},
                "error": last.error if last and last.status != JobStatus.COMPLETED else None,
            }
        )
    return rows, counts(views)
