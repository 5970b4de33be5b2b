"""The workflow definition (ARCHITECTURE.md §2) as Pydantic models: one ``Workflow`` at the top.

These models check each field and each step on its own. Checks across steps (needs, cycles,
template references) are in ``spec/checks.py``, and the loader runs both and reports every
problem at once; use ``opsflow.spec.loader`` to read a definition, not ``Workflow`` directly.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from opsflow.spec.duration import Duration
from opsflow.spec.fields import AgentSelector, Identifier, SpecModel, TextMap, WorkflowId
from opsflow.spec.notifications import Notify, NotifyDefaults, RunNotification
from opsflow.spec.params import Param, ParamType
from opsflow.spec.ssh_step import FailOn, SshInventory, SshStep
from opsflow.spec.steps import (
    ApprovalStep,
    ConditionStep,
    HttpMethod,
    HttpStep,
    NotifyStep,
    ScriptStep,
    Shell,
    StepBase,
    WorkflowStep,
)
from opsflow.spec.tool_steps import (
    AnsibleStep,
    Inventory,
    TerraformAction,
    TerraformSource,
    TerraformStep,
)
from opsflow.spec.triggers import (
    GitTrigger,
    IncidentTrigger,
    ScheduleTrigger,
    Trigger,
    TriggerType,
    WebhookTrigger,
    WorkflowTrigger,
)
from opsflow.status import ConcurrencyPolicy, StepType

__all__ = [
    "AgentSelector",
    "AnsibleStep",
    "ApprovalStep",
    "Concurrency",
    "ConditionStep",
    "FailOn",
    "GitTrigger",
    "HttpMethod",
    "HttpStep",
    "IncidentTrigger",
    "Inventory",
    "NotifyDefaults",
    "NotifyStep",
    "Param",
    "ParamType",
    "RunNotification",
    "ScheduleTrigger",
    "ScriptStep",
    "Shell",
    "SshInventory",
    "SshStep",
    "Step",
    "StepBase",
    "TerraformAction",
    "TerraformSource",
    "TerraformStep",
    "Trigger",
    "TriggerType",
    "WebhookTrigger",
    "Workflow",
    "WorkflowStep",
    "WorkflowTrigger",
]

Step = Annotated[
    ScriptStep
    | HttpStep
    | TerraformStep
    | AnsibleStep
    | SshStep
    | ApprovalStep
    | ConditionStep
    | NotifyStep
    | WorkflowStep,
    Field(discriminator="type"),
]

STEP_MODELS: dict[StepType, type[StepBase]] = {
    StepType.SCRIPT: ScriptStep,
    StepType.HTTP: HttpStep,
    StepType.TERRAFORM: TerraformStep,
    StepType.ANSIBLE: AnsibleStep,
    StepType.SSH: SshStep,
    StepType.APPROVAL: ApprovalStep,
    StepType.CONDITION: ConditionStep,
    StepType.NOTIFY: NotifyStep,
    StepType.WORKFLOW: WorkflowStep,
}

# The most steps one workflow may have; a larger definition is refused before anything else
# is checked (docs/reference/workflow-yaml.md). Split bigger processes into workflows that
# trigger each other.
MAX_STEPS = 5_000

# The fields (YAML names) whose strings are Jinja2 templates, per step type. Executors render
# exactly these with ``opsflow.spec.template.render_value``; everything else is taken as
# written. Script ``run`` bodies are never templated: values reach scripts through ``env``.
TEMPLATED_FIELDS: dict[StepType, tuple[str, ...]] = {
    StepType.SCRIPT: ("env",),
    StepType.HTTP: ("url", "headers", "body", "json"),
    StepType.TERRAFORM: ("vars", "env", "workspace"),
    StepType.ANSIBLE: ("extra_vars", "env", "limit"),
    StepType.SSH: ("hosts", "user", "env"),
    StepType.APPROVAL: ("message",),
    StepType.CONDITION: ("if",),
    StepType.NOTIFY: ("message", "title"),
    StepType.WORKFLOW: ("params",),
}


# The templated fields whose values reach a job as data (environment, request, variables,
# message): the only places ``secrets.*`` may be used, and only written out whole. Elsewhere
# (a condition, an approval message, a child's params, a Terraform workspace, which names the
# state, an Ansible host limit, which is a command-line argument) a secret is refused.
SECRET_FIELDS: dict[StepType, tuple[str, ...]] = {
    StepType.SCRIPT: ("env",),
    StepType.HTTP: ("url", "headers", "body", "json"),
    StepType.TERRAFORM: ("vars", "env"),
    StepType.ANSIBLE: ("extra_vars", "env"),
    StepType.SSH: ("env",),
    StepType.NOTIFY: ("message", "title"),
}


class Concurrency(SpecModel):
    """How many runs of this workflow may be active at once, and what happens to the next."""

    limit: int = Field(1, ge=1, description="Runs active at once.")
    policy: ConcurrencyPolicy = Field(
        ConcurrencyPolicy.QUEUE,
        description="At the limit: queue the new run, skip it, or cancel-running ones.",
    )


class Workflow(SpecModel):
    """A workflow: params, triggers and a DAG of steps."""

    id: WorkflowId = Field(description="Unique id: lowercase letters, digits and '-'.")
    name: str | None = Field(None, description="Display name; defaults to the id.")
    description: str | None = Field(None, description="What the workflow does.")
    labels: TextMap = Field(default_factory=dict, description="Labels to filter workflows by.")
    params: dict[Identifier, Param] = Field(
        default_factory=dict, description="Inputs of a run, read as params.NAME in templates."
    )
    triggers: list[Trigger] = Field(
        default_factory=list, description="What starts runs besides people."
    )
    concurrency: Concurrency | None = Field(None, description="Limit on simultaneous runs.")
    outputs: dict[Identifier, str] = Field(
        default_factory=dict,
        description="The run's outputs, name -> template, rendered when the run completes "
        "(read by workflow triggers as trigger.upstream.outputs and by workflow steps as "
        "nodes.<id>.output.outputs).",
    )
    timeout: Duration | None = Field(None, description="Limit for the whole run, e.g. 2h.")
    agent: AgentSelector | None = Field(None, description="Default placement of every step.")
    notify: Notify | None = Field(
        None,
        description="A default channel for notify steps and approval requests ({channel: ops}), "
        "or messages sent when a run ends ([{on: [failed], channel: ops}]).",
    )
    steps: list[Step] = Field(min_length=1, description="The steps; needs make them a DAG.")

    @field_validator("timeout")
    @classmethod
    def _timeout_positive(cls, value: float | None) -> float | None:
        if value == 0:
            raise ValueError("a timeout of 0 would end every run at once; leave it out for none")
        return value

    @property
    def title(self) -> str:
        """What the UI and CLI show: the name, or the id when there is none."""
        return self.name or self.id

    def step(self, step_id: str) -> StepBase:
        """The step with id ``step_id``; KeyError when there is none."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)
