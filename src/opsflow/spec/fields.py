"""Field types shared by the workflow models: ids, names, text maps, paths, agent selection.

Each type carries its own check and a message that says how to fix a bad value, so every model
refuses the same mistakes with the same words, and the JSON Schema shows editors the same rule.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)

from opsflow.spec.duration import Duration
from opsflow.status import ExecutionStatus
from opsflow.words import did_you_mean

WORKFLOW_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
STEP_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
KEY_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
CONNECTION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class SpecModel(BaseModel):
    """Base of every definition model: unknown fields are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def matching(pattern: str, what: str, fix: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid {what}: {fix}")
        return value

    return AfterValidator(check)


WorkflowId = Annotated[
    str,
    matching(
        WORKFLOW_ID_PATTERN,
        "workflow id",
        "use 1 to 63 lowercase letters, digits and '-', starting with a letter or digit",
    ),
    Field(json_schema_extra={"pattern": WORKFLOW_ID_PATTERN}),
]

StepId = Annotated[
    str,
    matching(
        STEP_ID_PATTERN,
        "step id",
        "use 1 to 63 lowercase letters, digits, '-' and '_', starting with a letter or digit",
    ),
    Field(json_schema_extra={"pattern": STEP_ID_PATTERN}),
]

# Names that templates read as ``params.NAME`` or scripts as ``$NAME`` must be identifiers.
Identifier = Annotated[
    str,
    matching(NAME_PATTERN, "name", "use letters, digits and '_', not starting with a digit"),
    Field(json_schema_extra={"pattern": NAME_PATTERN}),
]

# A connection (named, typed credentials on the server) as a step names it.
ConnectionName = Annotated[
    str,
    matching(
        CONNECTION_NAME_PATTERN,
        "connection name",
        "use letters, digits, '-', '_' and '.', starting with a letter or digit",
    ),
    Field(
        description="A connection on the server (opsflow connections list) whose credentials "
        "the step uses; delivered to the agent with the job only.",
        json_schema_extra={"pattern": CONNECTION_NAME_PATTERN},
    ),
]

TriggerKey = Annotated[
    str,
    matching(KEY_PATTERN, "trigger key", "use 1 to 64 letters, digits, '-' and '_'"),
    Field(json_schema_extra={"pattern": KEY_PATTERN}),
]


END_STATUSES = tuple(s.value for s in ExecutionStatus if s.terminal)


def _end_status(value: Any) -> Any:
    """Only the statuses a run ends with are accepted, and only they are named in the
    error (``running`` is a status, but no run ends with it)."""
    if value in END_STATUSES:
        return value
    ends = ", ".join(END_STATUSES)
    if isinstance(value, str) and value in ExecutionStatus.__members__.values():
        raise ValueError(f"{value!r} is not how a run ends: use one of {ends}")
    guess = did_you_mean(value, END_STATUSES) if isinstance(value, str) else ""
    raise ValueError(f"{value!r} is not how a run ends: use one of {ends}{guess}")


# How a run may end (a workflow trigger's ``statuses``, a notification's ``on``).
EndStatus = Annotated[
    ExecutionStatus,
    BeforeValidator(_end_status),
    WithJsonSchema({"type": "string", "enum": list(END_STATUSES)}),
]


def _scalar_to_text(value: Any) -> Any:
    """A JSON number or boolean where text belongs becomes its JSON spelling. (From YAML the
    loader hands over the text as written instead: ``VERSION: 1.10`` stays ``1.10``.)"""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_scalar_to_text)]
"""A string field that also takes a number or boolean and keeps its text."""

TextMap = dict[str, Text]
EnvMap = dict[Identifier, Text]


def _relative_path(value: str) -> str:
    path = PurePosixPath(value)
    if not value.strip():
        raise ValueError("the path is empty: give a path relative to the workflow directory")
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(
            f"{value!r} must be a path inside the workflow directory "
            "(relative, without '..'): the workflow's files are copied for every job"
        )
    return value


RelativePath = Annotated[str, AfterValidator(_relative_path)]
"""A file or directory of the workflow's own files, relative to its directory."""


def _nonblank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


NonBlank = Annotated[str, AfterValidator(_nonblank)]

NonBlankText = Annotated[str, BeforeValidator(_scalar_to_text), AfterValidator(_nonblank)]
"""Non-blank text that also takes a number or boolean as its text (``if: true``)."""


class AgentSelector(SpecModel):
    """Where a job runs: an agent of ``pool`` that has every one of ``labels``; and how long
    a job may wait for one (``placement_timeout``) before its step fails saying why."""

    pool: NonBlank | None = Field(None, description="Agent pool; the local agent is 'default'.")
    labels: TextMap = Field(
        default_factory=dict, description="Labels the agent must have, e.g. {region: eu}."
    )
    placement_timeout: Duration | None = Field(
        None,
        description="How long a queued job may wait for an agent of its pool and labels, "
        "e.g. 5m; then the step fails with the reason (no retry). Default: it waits.",
    )

    @field_validator("placement_timeout")
    @classmethod
    def _placement_timeout_positive(cls, value: float | None) -> float | None:
        if value == 0:
            raise ValueError("a placement timeout of 0 would fail every step; leave it out")
        return value


class FieldProblem(ValueError):
    """A model-level check's complaint about one field, so the loader can point at that field.

    Pydantic locates a model validator's error at the model; raising this instead names the
    field (``steps[1].min_approvals`` rather than ``steps[1]``) and its line; ``at`` goes on
    inside the field (``("exclude", 0)``: ``steps[1].matrix.exclude[0]``).
    """

    def __init__(self, field: str, message: str, *, at: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.field = field
        self.at = at
