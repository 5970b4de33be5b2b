"""Response bodies of the execution endpoints (what OpenAPI documents and clients read).

Times are ISO 8601 UTC strings (the store keeps epoch seconds); durations are milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from opsflow.spec.steps import step_action
from opsflow.spec.triggers import RunTrigger
from opsflow.status import ExecutionStatus, JobStatus, LogLevel, LogStream, StepStatus, StepType
from opsflow.store.jobs import Job
from opsflow.store.overview import StepCounts
from opsflow.store.runs import Execution


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _millis(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start) * 1000, 3)


class JobOut(BaseModel):
    id: str
    attempt: int
    status: JobStatus
    action: str = Field(
        description="What the job does, as type.verb: script.bash, http.request, "
        "terraform.plan|apply|destroy, ansible.playbook, notify.slack (the channel's "
        "service; notify.send when several), ssh.command|script."
    )
    agent_id: str | None = Field(description="The agent that took the job; null until one does.")
    created_at: str | None
    dispatched_at: str | None
    started_at: str | None
    ended_at: str | None
    duration_ms: float | None
    exit_code: int | None
    outputs: dict[str, Any]
    error: str | None
    retryable: bool
    purpose: str = Field("run", description="run: an attempt of the step; cleanup: undo work.")
    item: int | None = Field(
        None, description="The item of a fanned-out step this job runs (0-based); else null."
    )
    item_attempt: int | None = Field(
        None,
        description="Which attempt of its item this job is (1 for the item's first; `attempt` "
        "counts every job of the step, all items together); null for a plain step's jobs.",
    )

    @classmethod
    def of(
        cls, job: Job, step_definition: Mapping[str, Any], item_attempt: int | None = None
    ) -> JobOut:
        """``step_definition`` names the action when the job has no configuration (a job
        whose templates failed before any agent saw it); ``item_attempt``: the item job's own
        attempt number (``runtime.fan_out.item_attempts``)."""
        config = job.spec.get("config") or step_definition
        return cls(
            id=job.id,
            attempt=job.attempt,
            status=job.status,
            action=step_action(StepType(job.type), config),
            agent_id=job.agent_id,
            created_at=iso(job.created_at),
            dispatched_at=iso(job.dispatched_at),
            started_at=iso(job.started_at),
            ended_at=iso(job.ended_at),
            duration_ms=_millis(job.started_at, job.ended_at),
            exit_code=job.exit_code,
            outputs=job.outputs,
            error=job.error,
            retryable=job.retryable,
            purpose=job.purpose,
            item=job.item,
            item_attempt=item_attempt,
        )


class FanOutOut(BaseModel):
    """How a step with for_each or matrix fans out, and where its items are."""

    kind: str = Field(description="for_each or matrix.")
    max_parallel: int | None = Field(description="Items running at once; null: no limit.")
    fail_fast: bool
    min_success: int | None = Field(description="Items that must succeed; null: all.")
    total: int | None = Field(description="How many items; null until the list is worked out.")
    counts: dict[str, int] = Field(description="Items in each status (step status names).")


class ItemOut(BaseModel):
    """One item of a fanned-out step: the value, where it is, and its latest attempt."""

    index: int = Field(description="0-based place in the list (what --item takes).")
    item: Any = Field(description="The value; for a matrix, the combination {key: value}.")
    status: StepStatus
    attempts: int = Field(
        description="Attempts of this item (each is a job of the step whose `item_attempt` "
        "counts them), people's retries included."
    )
    job_id: str | None = Field(description="Its latest job; null before its first start.")
    started_at: str | None
    ended_at: str | None
    retry_at: str | None = Field(description="When a waiting item's next attempt starts.")
    outputs: dict[str, Any]
    error: str | None


class StepOut(BaseModel):
    id: str
    type: StepType
    status: StepStatus
    started_at: str | None
    ended_at: str | None
    retry_at: str | None
    outputs: dict[str, Any]
    error: str | None
    result: str | None = Field(
        None, description="A gate's answer: approved, rejected, true, false."
    )
    pending_reason: str | None = Field(
        None,
        description="Why the step is not moving, e.g. 'no agent serves pool us-east', "
        "'waiting for a free slot on pool default (4/4 busy)', 'waiting for needs: build', "
        "'waiting for approval'; null when nothing holds it up.",
    )
    jobs: list[JobOut]
    fan_out: FanOutOut | None = Field(None, description="Set on a step with for_each/matrix.")
    items: list[ItemOut] = Field(
        default_factory=list, description="A fanned-out step's items, in order."
    )


class EngineLogOut(BaseModel):
    at: str | None
    step: str | None
    message: str


class TriggerRecord(BaseModel):
    """How the execution started."""

    type: RunTrigger = Field(description="manual, or the trigger type that started it.")
    name: str | None = Field(
        None,
        description="The trigger's name in its workflow (its YAML `key`, else `<type>-<n>`); "
        "null for a manual run.",
    )
    source: str | None = Field(
        description="Which trigger: the schedule, webhook, repository, incident source or "
        "parent execution; null for a manual run."
    )
    actor: str | None = Field(
        description="Who started it: the user of a manual run (or whom a trigger acted for)."
    )

    @classmethod
    def of(cls, ex: Execution) -> TriggerRecord:
        source = ex.trigger.get("source")
        name = ex.trigger.get("name")
        return cls(
            type=RunTrigger(ex.trigger_type),
            name=str(name) if name is not None else None,
            source=str(source) if source is not None else None,
            actor=ex.started_by,
        )


class StepProgress(BaseModel):
    """How far the execution's steps have come (the UI's "jobs done / total")."""

    total: int = Field(description="Steps in the execution.")
    done: int = Field(
        description="Steps that ended, whether they ran or not (succeeded, failed, approved, "
        "rejected, skipped, cancelled); `done - skipped - cancelled` ran to an end."
    )
    running: int = Field(description="Steps running now.")
    waiting: int = Field(description="Steps waiting for an approval or a retry delay.")
    failed: int = Field(description="Steps that ended failed.")
    skipped: int = Field(description="Steps that ended skipped (never ran, or skipped by hand).")
    cancelled: int = Field(description="Steps that ended cancelled, most before they ran.")

    @classmethod
    def of(cls, counts: StepCounts) -> StepProgress:
        return cls(
            total=counts.total,
            done=counts.done,
            running=counts.running,
            waiting=counts.waiting,
            failed=counts.failed,
            skipped=counts.skipped,
            cancelled=counts.cancelled,
        )


class ExecutionSummary(BaseModel):
    id: str
    workflow_id: str
    version: int | None
    test_run: bool
    status: ExecutionStatus
    status_reason: str
    trigger_type: RunTrigger = Field(description="The same as `trigger.type`.")
    trigger: TriggerRecord
    started_by: str | None
    created_at: str | None
    started_at: str | None
    ended_at: str | None
    duration_ms: float | None = Field(
        description="From start to end; null until the execution ends (count from "
        "`started_at` while it runs)."
    )
    progress: StepProgress

    @classmethod
    def of(cls, ex: Execution, counts: StepCounts) -> ExecutionSummary:
        return cls(
            id=ex.id,
            workflow_id=ex.workflow_id,
            version=ex.version,
            test_run=ex.test_run,
            status=ex.status,
            status_reason=ex.status_reason,
            trigger_type=RunTrigger(ex.trigger_type),
            trigger=TriggerRecord.of(ex),
            started_by=ex.started_by,
            created_at=iso(ex.created_at),
            started_at=iso(ex.started_at),
            ended_at=iso(ex.ended_at),
            duration_ms=_millis(ex.started_at, ex.ended_at),
            progress=StepProgress.of(counts),
        )


class CancelRequest(BaseModel):
    mode: str | None = Field(
        description="graceful or force; null for a cleanup asked after the execution ended."
    )
    cleanup: bool = Field(description="Each step's cleanup action runs after the cancel.")
    requested_at: str | None
    reason: str | None
    by: str | None


class ParentStep(BaseModel):
    """The workflow step whose child this execution is."""

    execution_id: str
    step: str


class ExecutionDetail(ExecutionSummary):
    params: dict[str, Any]
    outputs: dict[str, Any] = Field(
        description="The workflow's `outputs`, rendered when the run completed; {} until then "
        "(and for a run that did not complete)."
    )
    parent: ParentStep | None = Field(
        None, description="The workflow step that started this run as its child; null otherwise."
    )
    chain: list[str] = Field(
        default_factory=list,
        description="The workflows whose runs led to this one through workflow triggers and "
        "workflow steps, first one first; [] for a run nobody's run started.",
    )
    trigger_data: dict[str, Any] = Field(
        description="What the trigger delivered (webhook fields, schedule time); {} when manual."
    )
    cancel: CancelRequest | None
    steps: list[StepOut]
    engine_log: list[EngineLogOut]


class ExecutionPage(BaseModel):
    items: list[ExecutionSummary]
    total: int
    limit: int
    offset: int


class LogLineOut(BaseModel):
    """One log line; also the data of a ``log`` event on an execution's event stream."""

    id: int
    step: str
    job_id: str
    item: int | None = Field(None, description="The item of a fanned-out step; else null.")
    seq: int
    at: str | None
    stream: LogStream = Field(
        description="stdout or stderr of the step's program, or system: opsflow's own line "
        "(the command it runs, the request it sends, why the step failed)."
    )
    level: LogLevel | None = Field(
        description="How serious a system line is, as the executor that wrote it says: info "
        "(progress), warn (worth noticing, did not fail the step), error (why the step "
        "failed). Null for program output, whose words opsflow does not judge, and for "
        "system lines stored before levels existed."
    )
    text: str

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> LogLineOut:
        """From a row of ``store.logs.query``."""
        return cls(
            id=row["id"],
            step=row["step_id"],
            job_id=row["job_id"],
            item=row.get("item"),
            seq=row["seq"],
            at=iso(row["at"]),
            stream=row["stream"],
            level=row["level"],
            text=row["text"],
        )


class LogPage(BaseModel):
    items: list[LogLineOut]
    next_after: int = Field(description="Pass as `after` to read the lines that follow.")
