"""Every status and outcome name, defined once.

API, CLI, UI, store and engine all use these enums; nobody compares hand-spelled strings.
"""

from __future__ import annotations

from enum import StrEnum


class ExecutionStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    ERROR = "error"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_EXECUTION


_TERMINAL_EXECUTION = frozenset(
    {
        ExecutionStatus.COMPLETED,
        ExecutionStatus.FAILED,
        ExecutionStatus.CANCELLED,
        ExecutionStatus.REJECTED,
        ExecutionStatus.ERROR,
    }
)


class StepStatus(StrEnum):
    PENDING = "pending"
    WAITING = "waiting"  # an approval gate waiting for people, or a retry waiting for its delay
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    APPROVED = "approved"
    REJECTED = "rejected"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_STEP


_TERMINAL_STEP = frozenset(
    {
        StepStatus.SUCCEEDED,
        StepStatus.FAILED,
        StepStatus.SKIPPED,
        StepStatus.CANCELLED,
        StepStatus.APPROVED,
        StepStatus.REJECTED,
    }
)


class JobStatus(StrEnum):
    PENDING = "pending"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_JOB


_TERMINAL_JOB = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.TIMEOUT, JobStatus.CANCELLED}
)


class JobPurpose(StrEnum):
    """Why a job exists: an attempt of its step, or undoing the step's work (cleanup)."""

    RUN = "run"
    CLEANUP = "cleanup"


class ApprovalStatus(StrEnum):
    """Where one round of an approval gate is."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class WorkflowStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"


class Outcome(StrEnum):
    """What a `needs` entry waits for: `<id>.<outcome>`; a bare `<id>` means SUCCESS."""

    SUCCESS = "success"  # succeeded, approved or true, whichever the step type has
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    APPROVED = "approved"
    REJECTED = "rejected"
    TRUE = "true"
    FALSE = "false"
    ALWAYS = "always"


class StepType(StrEnum):
    SCRIPT = "script"
    HTTP = "http"
    TERRAFORM = "terraform"
    ANSIBLE = "ansible"
    SSH = "ssh"
    APPROVAL = "approval"
    CONDITION = "condition"
    NOTIFY = "notify"
    WORKFLOW = "workflow"


# Which named outcomes (besides SUCCESS and ALWAYS) each step type can produce.
OUTCOMES_BY_TYPE: dict[StepType, frozenset[Outcome]] = {
    StepType.SCRIPT: frozenset({Outcome.SUCCEEDED, Outcome.FAILED}),
    StepType.HTTP: frozenset({Outcome.SUCCEEDED, Outcome.FAILED}),
    StepType.TERRAFORM: frozenset({Outcome.SUCCEEDED, Outcome.FAILED}),
    StepType.ANSIBLE: frozenset({Outcome.SUCCEEDED, Outcome.FAILED}),
    StepType.NOTIFY: frozenset({Outcome.SUCCEEDED, Outcome.FAILED}),
    StepType.SSH: frozenset({Outcome.SUCCEEDED, Outcome.FAILED}),
    StepType.WORKFLOW: frozenset({Outcome.SUCCEEDED, Outcome.FAILED}),
    StepType.APPROVAL: frozenset({Outcome.APPROVED, Outcome.REJECTED}),
    StepType.CONDITION: frozenset({Outcome.TRUE, Outcome.FALSE, Outcome.FAILED}),
}

# Step types resolved by the runtime itself, never sent to an agent.
GATE_TYPES = frozenset({StepType.APPROVAL, StepType.CONDITION, StepType.WORKFLOW})


class ConcurrencyPolicy(StrEnum):
    QUEUE = "queue"
    SKIP = "skip"
    CANCEL_RUNNING = "cancel-running"


class Join(StrEnum):
    ALL = "all"
    ANY = "any"


class LogStream(StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"
    SYSTEM = "system"


class LogLevel(StrEnum):
    """How serious one of opsflow's own log lines (stream ``system``) is, as the executor that
    wrote it says: ``info`` for progress (the command it runs, the request it sends), ``warn``
    for something the reader should notice that did not fail the step (a forced kill, a
    truncated log, lost lines), ``error`` for why the step failed (exit code, timeout, name not
    resolved). Program output (stdout, stderr) has no level: opsflow does not judge a
    program's lines by their words."""

    INFO = "info"
    WARN = "warn"
    ERROR = "error"
