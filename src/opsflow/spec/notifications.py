"""The workflow's ``notify``: a default channel for its steps, or messages sent when a run ends.

Two shapes (docs/reference/workflow-yaml.md, "notify"):

- ``notify: {channel: ops}`` names the channel notify steps and approval requests use when
  they name none;
- ``notify: [{on: [failed, rejected], channel: ops, message: "..."}]`` sends one message per
  entry when a run ends with one of the entry's statuses, through the server's durable outbox
  (``runtime/run_notify.py`` queues it in the transaction that ends the run).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from opsflow.spec.fields import ConnectionName, FieldProblem, NonBlank, SpecModel
from opsflow.status import ExecutionStatus

# The statuses a run ends with, in the order the docs list them.
RUN_ENDS: tuple[ExecutionStatus, ...] = (
    ExecutionStatus.COMPLETED,
    ExecutionStatus.FAILED,
    ExecutionStatus.REJECTED,
    ExecutionStatus.CANCELLED,
    ExecutionStatus.ERROR,
)
DEFAULT_ON: tuple[ExecutionStatus, ...] = (
    ExecutionStatus.FAILED,
    ExecutionStatus.REJECTED,
    ExecutionStatus.ERROR,
)

# What a run-end message may read of ``execution`` beyond what every template may
# (``spec.template.FIELDS``): the run's summary, known only once it has ended.
RUN_END_FIELDS = frozenset(
    {"status", "status_reason", "ended_at", "duration", "failed_step", "failed_steps", "error"}
)

# The branches of ``notify``, chosen by the value's shape (spec/messages.py drops the tag
# from error locations).
NOTIFY_SHAPES = frozenset({"defaults", "runs"})


class NotifyDefaults(SpecModel):
    """Where this workflow's messages go when a step does not say (approval requests too)."""

    channel: NonBlank = Field(description="Default channel name.")


class RunNotification(SpecModel):
    """One message sent when a run ends with one of ``on``'s statuses."""

    on: list[ExecutionStatus] = Field(
        default_factory=lambda: list(DEFAULT_ON),
        min_length=1,
        json_schema_extra={"items": {"enum": [s.value for s in RUN_ENDS], "type": "string"}},
        description="The run ends that send it: completed, failed, rejected, cancelled, error "
        "(default: failed, rejected, error).",
    )
    channel: NonBlank | None = Field(
        None,
        description="Channel name: a notify connection (the server's configured channels are "
        "connections too).",
    )
    connection: ConnectionName | None = Field(
        None, description="A notify connection (Apprise URLs); the same as channel."
    )
    message: NonBlank | None = Field(
        None,
        description="Message text (templated; execution.status, duration, failed_step, "
        "failed_steps and error are set). Default: the run's summary with its link.",
    )
    title: str | None = Field(
        None, description="Title (templated). Default: '<workflow> <status>'."
    )

    @field_validator("on", mode="before")
    @classmethod
    def _run_ends(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        names = [s.value for s in RUN_ENDS]
        bad = []
        for index, item in enumerate(value):
            if isinstance(item, str) and item not in names:
                match = difflib.get_close_matches(item, names, n=1)
                hint = f" (did you mean '{match[0]}'?)" if match else ""
                bad.append(f"on[{index}]: {item!r} is not a status a run ends with{hint}")
        if bad:
            # Every unknown item at once, not one per attempt.
            raise ValueError(f"{'; '.join(bad)}; use: {', '.join(names)}")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if self.channel is not None and self.connection is not None:
            raise FieldProblem(
                "connection", "give channel or connection (they name the same thing), not both"
            )
        if self.channel is None and self.connection is None:
            raise FieldProblem("channel", "'channel' is required: the notify connection to send to")
        return self


def _notify_shape(value: Any) -> str:
    return "runs" if isinstance(value, list) else "defaults"


Notify = Annotated[
    Annotated[NotifyDefaults, Tag("defaults")] | Annotated[list[RunNotification], Tag("runs")],
    Discriminator(_notify_shape),
]


def default_channel(definition: Mapping[str, Any]) -> str | None:
    """The channel steps and approval requests use when they name none: ``notify.channel`` of
    the mapping form; the list form (run-end messages) sets none."""
    notify = definition.get("notify")
    if isinstance(notify, Mapping) and notify.get("channel"):
        return str(notify["channel"])
    return None


def run_notifications(definition: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The run-end entries of a stored definition (the list form of ``notify``), as written."""
    notify = definition.get("notify")
    return [n for n in notify if isinstance(n, Mapping)] if isinstance(notify, list) else []
