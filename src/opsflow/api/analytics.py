"""``GET /analytics``: how runs went over a window, computed by SQL aggregates
(`opsflow.store.analytics`).

The window is the executions *created* in ``[since, until)``; ``since`` and ``until`` are ISO
8601 dates or times (UTC when no offset is given), or ``since`` a duration back from ``until``
(``7d``, ``12h``, parsed by the one duration parser). Defaults: the last 30 days up to now.
Durations in the answer are milliseconds, times ISO 8601 UTC, like the executions API.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from opsflow.api.problems import error_responses
from opsflow.api.security import require
from opsflow.api.services import services_of
from opsflow.auth.credentials import Principal
from opsflow.auth.permissions import Permission
from opsflow.errors import InvalidInput, Problem
from opsflow.spec.duration import parse_duration
from opsflow.store import analytics as store

router = APIRouter(tags=["analytics"])

DEFAULT_DAYS = 30
MAX_DAYS = 366
_TIME_HINT = "use an ISO 8601 date or time such as 2026-11-01 or 2026-11-25T10:00:00Z"
# The instants a date can show, in UTC: a window's ends are written back as dates.
_FIRST = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_LAST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _bad(field: str, msg: str) -> InvalidInput:
    return InvalidInput(f"{field}: {msg}", problems=[Problem(f"query.{field}", msg)])


def _instant(value: str, field: str) -> float:
    """Epoch seconds of an ISO 8601 date (its midnight UTC) or date-time."""
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC).timestamp()
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _bad(field, f"{value!r} is not a date or time; {_TIME_HINT}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_window(
    since: str | None, until: str | None, workflow: str | None, now: float
) -> store.Window:
    """The window a request asks for; raises `InvalidInput` naming ``since`` or ``until``
    when a value is not a time, the window is empty or reversed, or longer than `MAX_DAYS`."""
    end = now if until is None else _instant(until, "until")
    if since is None:
        start = end - DEFAULT_DAYS * store.DAY
    elif since.strip()[:1].isdigit() and since.strip()[-1:].isalpha() and len(since) < 10:
        try:
            start = end - parse_duration(since)
        except ValueError as exc:
            raise _bad("since", str(exc)) from exc
    else:
        start = _instant(since, "since")
    for at, field in ((end, "until"), (start, "since" if since is not None else "until")):
        if not _FIRST <= at <= _LAST:
            raise _bad(field, "the window would reach outside the years 1 to 9999 in UTC")
    if start >= end:
        raise _bad(
            "since", f"{_iso(start)} is not before until ({_iso(end)}); pick an earlier since"
        )
    if end - start > MAX_DAYS * store.DAY:
        raise _bad(
            "since",
            f"the window is {(end - start) / store.DAY:.0f} days; ask for at most {MAX_DAYS}",
        )
    return store.Window(since=start, until=end, workflow=workflow or None)


# --------------------------------------------------------------------------- shapes


class WindowOut(BaseModel):
    since: str = Field(description="Start of the window, inclusive (ISO 8601 UTC).")
    until: str = Field(description="End of the window, exclusive (ISO 8601 UTC).")
    workflow: str | None = Field(description="The one workflow counted, or null for all.")


class SummaryOut(BaseModel):
    total_executions: int = Field(description="Executions created in the window (no test runs).")
    completed: int
    failed: int = Field(description="Ended failed or error.")
    other: int = Field(description="Neither completed nor failed: running, cancelled, rejected…")
    ended: int = Field(description="Executions that have ended (any terminal status).")
    success_rate: float | None = Field(description="completed / ended, 0..1; null when none ended.")
    avg_duration_ms: float | None = Field(description="Mean start-to-end time of ended runs.")
    p95_duration_ms: float | None = Field(
        description="95th percentile of the same (continuous, as PostgreSQL percentile_cont)."
    )
    active_workflows: int = Field(description="Distinct workflows with a run in the window.")


class DayOut(BaseModel):
    day: str = Field(description="The UTC day, YYYY-MM-DD.")
    completed: int
    failed: int
    other: int


class WorkflowRunsOut(BaseModel):
    workflow_id: str
    runs: int
    completed: int
    ended: int
    success_rate: float | None = Field(description="completed / ended, null when none ended.")
    avg_duration_ms: float | None


class SlowStepOut(BaseModel):
    workflow_id: str
    step_id: str
    type: str = Field(description="The step type.")
    runs: int = Field(description="Ended runs of the step (skipped ones left out).")
    avg_duration_ms: float
    max_duration_ms: float


class AgentLoadOut(BaseModel):
    agent_id: str
    jobs: int = Field(description="Attempts handed to it in the window (test runs included).")
    completed: int
    failed: int = Field(description="Failed or timed out.")
    busy_ms: float = Field(description="Sum of its jobs' run times.")
    utilization: float = Field(
        description="busy time / window length (one slot; above 1 with concurrency)."
    )


class ApprovalWaitsOut(BaseModel):
    total: int = Field(description="Approval gates opened in the window (test runs included).")
    pending: int = Field(description="Still waiting for an answer.")
    decided: int
    avg_wait_ms: float | None = Field(description="Mean time from opened to decided.")
    p95_wait_ms: float | None
    max_wait_ms: float | None


class AnalyticsOut(BaseModel):
    window: WindowOut
    summary: SummaryOut
    daily: list[DayOut] = Field(description="One entry per UTC day of the window, oldest first.")
    top_workflows: list[WorkflowRunsOut] = Field(description="Most runs first (up to 10).")
    slowest_steps: list[SlowStepOut] = Field(description="Slowest average first (up to 10).")
    agents: list[AgentLoadOut] = Field(description="Jobs handed out in the window, per agent.")
    approvals: ApprovalWaitsOut

    @classmethod
    def of(cls, a: store.Analytics) -> AnalyticsOut:
        s, w, ap = a.summary, a.window, a.approvals
        length = w.until - w.since
        return cls(
            window=WindowOut(since=_iso(w.since), until=_iso(w.until), workflow=w.workflow),
            summary=SummaryOut(
                total_executions=s.total,
                completed=s.completed,
                failed=s.failed,
                other=s.other,
                ended=s.ended,
                success_rate=s.success_rate,
                avg_duration_ms=_ms(s.avg_duration),
                p95_duration_ms=_ms(s.p95_duration),
                active_workflows=s.active_workflows,
            ),
            daily=[DayOut(**vars(d)) for d in a.daily],
            top_workflows=[
                WorkflowRunsOut(
                    workflow_id=t.workflow_id,
                    runs=t.runs,
                    completed=t.completed,
                    ended=t.ended,
                    success_rate=t.success_rate,
                    avg_duration_ms=_ms(t.avg_duration),
                )
                for t in a.top_workflows
            ],
            slowest_steps=[
                SlowStepOut(
                    workflow_id=st.workflow_id,
                    step_id=st.step_id,
                    type=st.type,
                    runs=st.runs,
                    avg_duration_ms=_ms(st.avg_duration) or 0.0,
                    max_duration_ms=_ms(st.max_duration) or 0.0,
                )
                for st in a.slowest_steps
            ],
            agents=[
                AgentLoadOut(
                    agent_id=g.agent_id,
                    jobs=g.jobs,
                    completed=g.completed,
                    failed=g.failed,
                    busy_ms=_ms(g.busy_seconds) or 0.0,
                    utilization=g.busy_seconds / length,
                )
                for g in a.agents
            ],
            approvals=ApprovalWaitsOut(
                total=ap.total,
                pending=ap.pending,
                decided=ap.decided,
                avg_wait_ms=_ms(ap.avg_wait),
                p95_wait_ms=_ms(ap.p95_wait),
                max_wait_ms=_ms(ap.max_wait),
            ),
        )


@router.get("/analytics", response_model=AnalyticsOut, responses=error_responses(401, 403, 422))
def get_analytics(
    request: Request,
    _p: Annotated[Principal, Depends(require(Permission.EXECUTIONS_READ))],
    since: Annotated[
        str | None,
        Query(description="Window start: ISO 8601 date or time, or a duration back (`7d`)."),
    ] = None,
    until: Annotated[
        str | None, Query(description="Window end, exclusive (ISO 8601); default now.")
    ] = None,
    workflow: Annotated[str | None, Query(description="Only this workflow's runs.")] = None,
) -> AnalyticsOut:
    """Totals, success rate, average and p95 duration, active workflows, the daily trend,
    top workflows, slowest steps, jobs per agent and approval waits, over the executions
    created in the window (test runs left out). 422 names ``since`` or ``until`` when a value
    is not a time or the window is empty, reversed or longer than 366 days."""
    window = parse_window(since, until, workflow, time.time())
    with services_of(request).db.read() as session:
        return AnalyticsOut.of(store.analytics(session, window))
