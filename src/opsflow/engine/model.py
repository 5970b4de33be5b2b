"""Plain data the engine reads and writes: the graph, the execution's state, and actions.

This module is the contract between the pure engine (``decide``) and the runtime that applies
its actions in database transactions. Everything here is frozen; times are float seconds on
one clock chosen by the caller (the runtime passes epoch seconds), and durations are seconds.
Nothing here imports the database, asyncio or the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from opsflow.status import (
    ExecutionStatus,
    JobStatus,
    Join,
    Outcome,
    StepStatus,
    StepType,
)

# A step whose agent was lost this many attempts in a row fails instead of retrying again.
DEFAULT_AGENT_LOST_LIMIT = 3

# --------------------------------------------------------------------------- the graph


@dataclass(frozen=True)
class Edge:
    """One entry of ``needs``: ``step`` must end with ``outcome`` (SUCCESS for a bare id)."""

    step: str
    outcome: Outcome = Outcome.SUCCESS


@dataclass(frozen=True)
class FanOut:
    """A step that runs once per item of a list recorded when it starts (``for_each`` or
    ``matrix``): how many items may run at once, whether the items not started are cancelled
    once the step can no longer succeed, and how many must succeed (None: all)."""

    max_parallel: int | None = None
    fail_fast: bool = False
    min_success: int | None = None


@dataclass(frozen=True)
class StepNode:
    """What the engine needs to know about one step of the definition."""

    id: str
    type: StepType
    needs: tuple[Edge, ...] = ()
    join: Join = Join.ALL
    retries: int = 0
    retry_delay: float = 0.0
    timeout: float | None = None  # per attempt; for an approval, how long it may wait
    allow_skip: bool = False
    plan_from: str | None = None  # a terraform apply of the plan this step saved
    # Where its jobs run (the step's ``agent`` over the workflow's), for the reason a job that
    # waited out ``placement_timeout`` (seconds, from its creation) fails with.
    pool: str = "default"
    labels: tuple[tuple[str, str], ...] = ()
    placement_timeout: float | None = None
    fan_out: FanOut | None = None  # set on a step with for_each or matrix (agent steps only)


@dataclass(frozen=True)
class Graph:
    """A compiled, already validated workflow version (acyclic, ids unique, needs resolvable)."""

    steps: tuple[StepNode, ...]
    timeout: float | None = None  # whole execution, from started_at

    def step(self, step_id: str) -> StepNode:
        for node in self.steps:
            if node.id == step_id:
                return node
        raise KeyError(step_id)


# --------------------------------------------------------------------------- the state


class CancelMode(StrEnum):
    GRACEFUL = "graceful"  # in-flight jobs finish, nothing new starts
    FORCE = "force"  # in-flight jobs are terminated
    CLEANUP = "cleanup"  # graceful, then each step's cleanup action runs


@dataclass(frozen=True)
class CancelRequest:
    mode: CancelMode
    requested_at: float
    reason: str = "cancelled"


@dataclass(frozen=True)
class Attempt:
    """One job: one try of a step on an agent. ``number`` counts from 1 for the step."""

    number: int
    status: JobStatus
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    retryable: bool = True  # the executor's retry intent: False means do not retry
    error: str | None = None
    agent_lost: bool = False  # the agent that held it stopped heartbeating or restarted
    cancel_requested: bool = False  # a CancelJob was already issued for it
    # That CancelJob stops the job with the normal grace (the step's timeout, or a person's
    # cancel of one item); a forced cancel of the execution still cuts it short.
    stopping_for_timeout: bool = False
    # Which item of a fanned-out step it runs (0-based, in the recorded list's order).
    item: int | None = None
    # Why no agent took it, as the runtime judged the agents online once its placement time
    # was up (its pending reason then: "waiting for a free slot on pool eu (1/1 busy)");
    # None: not known, or not asked (its placement time is not up).
    unplaced_reason: str | None = None


@dataclass(frozen=True)
class ItemMark:
    """What people did to one item of a fanned-out step. ``retry_base``: the item's attempts
    (since the step's ``retry_base``) made before a person last retried it, so its
    ``retries`` count afresh; ``skipped``: a person skipped it (it counts as succeeded);
    ``cancelled``: a person cancelled it (its job is stopped; it counts as not succeeded)."""

    retry_base: int = 0
    skipped: bool = False
    cancelled: bool = False


@dataclass(frozen=True)
class StepState:
    """Where one step is. Only the engine changes ``status`` (through actions).

    ``gate_result`` is how the outside world answers a gate: the runtime writes APPROVED or
    REJECTED when people decide an approval (compare-and-set on ``waiting``), TRUE or FALSE
    when it evaluates a condition, SUCCEEDED or FAILED when a child workflow ends; FAILED also
    when a condition could not be evaluated. ``gate_reason`` says why (e.g. "timed out").

    ``retry_base`` is the number of attempts made before the last manual retry reset the step,
    so ``retries`` counts only attempts after it. ``user_skipped`` marks a step skipped by a
    person: downstream treats it as a success.
    """

    status: StepStatus = StepStatus.PENDING
    attempts: tuple[Attempt, ...] = ()
    entered_at: float | None = None  # when the step entered its current status
    retry_at: float | None = None  # set while WAITING for a retry delay
    gate_result: Outcome | None = None
    gate_reason: str | None = None
    retry_base: int = 0
    user_skipped: bool = False
    # A fanned-out step: how many items its recorded list has (None: not worked out yet), and
    # the marks people left on some of them. Its attempts since ``retry_base`` carry ``item``.
    items: int | None = None
    item_marks: Mapping[int, ItemMark] = field(default_factory=dict)

    @property
    def last_attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None


@dataclass(frozen=True)
class ExecutionState:
    status: ExecutionStatus
    created_at: float
    started_at: float | None = None
    steps: Mapping[str, StepState] = field(default_factory=dict)
    cancel: CancelRequest | None = None
    # When a person last retried or skipped a step (None: never). The workflow timeout counts
    # from here instead of from ``started_at``, and failures that ended before it no longer
    # hold new steps back (they still decide the outcome).
    resumed_at: float | None = None


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class SetExecutionStatus:
    status: ExecutionStatus
    reason: str = ""


@dataclass(frozen=True)
class SetStepStatus:
    """Move a step to ``status``. ``retry_at`` is set when it goes WAITING for a retry."""

    step: str
    status: StepStatus
    reason: str = ""
    retry_at: float | None = None


@dataclass(frozen=True)
class StartJob:
    """Queue attempt ``attempt`` of ``step`` (of its item ``item`` when it fans out) for an
    agent; the step becomes RUNNING. Attempt numbers count every attempt of the step."""

    step: str
    attempt: int
    item: int | None = None


@dataclass(frozen=True)
class ExpandItems:
    """The runtime works out a fanned-out step's list and records it (``StepState.items``),
    or, when it cannot, writes ``gate_result`` FAILED with the reason; a list already
    recorded (a person's retry) is kept as it is. The step is RUNNING."""

    step: str


@dataclass(frozen=True)
class CancelJob:
    """Stop a running or queued attempt. ``as_status`` is CANCELLED or TIMEOUT."""

    step: str
    attempt: int
    as_status: JobStatus = JobStatus.CANCELLED
    force: bool = True
    reason: str = ""
    # Not forced, yet a picked-up job is stopped too, with its normal grace (a person's
    # cancel of one item); a forced cancel of the execution still cuts it short.
    graceful_stop: bool = False


@dataclass(frozen=True)
class EvaluateCondition:
    """The runtime renders the condition's ``if`` and writes ``gate_result`` TRUE/FALSE."""

    step: str


@dataclass(frozen=True)
class OpenApproval:
    """The runtime opens the approval gate (record, notifications); the step is WAITING."""

    step: str


@dataclass(frozen=True)
class StartChildWorkflow:
    """The runtime starts the child workflow; its end becomes ``gate_result``."""

    step: str


@dataclass(frozen=True)
class Log:
    """A line for the execution's engine log: every transition and its reason."""

    message: str
    step: str | None = None


Action = (
    SetExecutionStatus
    | SetStepStatus
    | StartJob
    | CancelJob
    | ExpandItems
    | EvaluateCondition
    | OpenApproval
    | StartChildWorkflow
    | Log
)


@dataclass(frozen=True)
class Decision:
    """What to do now, and when to look again (the earliest timer: retry delay, timeout)."""

    actions: tuple[Action, ...]
    wake_at: float | None = None
