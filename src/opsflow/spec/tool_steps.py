"""Terraform and Ansible step declarations: the two steps that drive infrastructure tools."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Field, field_validator, model_validator

from opsflow.spec.fields import (
    ConnectionName,
    EnvMap,
    FieldProblem,
    NonBlank,
    RelativePath,
    SpecModel,
    StepId,
)
from opsflow.spec.state_names import workspace_problem
from opsflow.spec.steps import StepBase
from opsflow.spec.template import is_template
from opsflow.status import StepType


class TerraformAction(StrEnum):
    PLAN = "plan"
    APPLY = "apply"
    DESTROY = "destroy"


class TerraformSource(SpecModel):
    """Where the Terraform code is: a directory of the workflow, or a git repository."""

    dir: RelativePath | None = Field(None, description="Directory in the workflow's files.")
    git: NonBlank | None = Field(None, description="Repository URL to clone.")
    ref: NonBlank | None = Field(None, description="Branch, tag or commit of `git`.")
    path: RelativePath | None = Field(None, description="Directory inside the repository.")

    @model_validator(mode="after")
    def _one_place(self) -> Self:
        if (self.dir is None) == (self.git is None):
            raise ValueError(
                "give either {dir: PATH} (code in the workflow directory) or "
                "{git: URL, ref: REF, path: PATH} (code in a repository)"
            )
        if self.dir is not None and (self.ref is not None or self.path is not None):
            raise FieldProblem(
                "ref" if self.ref is not None else "path",
                "'ref' and 'path' go with 'git', not with 'dir'",
            )
        return self


class TerraformStep(StepBase):
    """Run ``terraform plan``, ``apply`` or ``destroy``; outputs ``changes`` and ``outputs``."""

    type: Literal[StepType.TERRAFORM]
    action: TerraformAction = Field(description="plan, apply or destroy.")
    source: TerraformSource | None = Field(
        None,
        description="Where the code is; defaults to the workflow directory, or to the "
        "plan's source with plan_from.",
    )
    vars: dict[str, Any] = Field(default_factory=dict, description="Input variables (templated).")
    var_files: list[RelativePath] = Field(
        default_factory=list, description=".tfvars files, relative to the workflow directory."
    )
    workspace: NonBlank | None = Field(None, description="Terraform workspace (templated).")
    env: EnvMap = Field(default_factory=dict, description="Environment variables (templated).")
    connection: ConnectionName | None = Field(
        None,
        description="A terraform connection: its variables (cloud credentials) join the "
        "process environment; env wins where both set one.",
    )
    plan_from: StepId | None = Field(
        None,
        description="Apply exactly the plan saved by this upstream terraform plan step.",
    )

    @field_validator("workspace")
    @classmethod
    def _workspace_usable(cls, value: str | None) -> str | None:
        # A templated workspace is checked once rendered, when its job is made.
        if value is not None and not is_template(value):
            problem = workspace_problem(value)
            if problem is not None:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _plan_from_fits(self) -> Self:
        if self.plan_from is not None:
            if self.action != TerraformAction.APPLY:
                raise FieldProblem(
                    "plan_from", f"plan_from only goes with action apply, not {self.action.value}"
                )
            if self.source is not None:
                raise FieldProblem(
                    "source", "an apply with plan_from uses the plan's source: remove 'source'"
                )
            # workspace, vars and var_files are compared with the plan's in spec.checks.
        return self


class Inventory(SpecModel):
    """Ansible inventory: a file, an inline host list, or an inventory script."""

    file: NonBlank | None = Field(
        None, description="Inventory file, relative to the workflow directory or absolute."
    )
    hosts: list[NonBlank] | None = Field(None, min_length=1, description="Hosts to run on.")
    script: RelativePath | None = Field(None, description="Dynamic inventory script.")

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        given = [k for k in ("file", "hosts", "script") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give an inventory file path, or one of {hosts: [...]} or {script: PATH}"
            )
        return self


def _inventory_from_text(value: Any) -> Any:
    return {"file": value} if isinstance(value, str) else value


class AnsibleStep(StepBase):
    """Run an Ansible playbook; outputs ``stats`` per host."""

    type: Literal[StepType.ANSIBLE]
    playbook: RelativePath = Field(description="Playbook, relative to the workflow directory.")
    inventory: Annotated[
        Inventory | None,
        BeforeValidator(_inventory_from_text, json_schema_input_type=str | Inventory | None),
    ] = Field(None, description="A file path, {hosts: [...]} or {script: PATH}.")
    extra_vars: dict[str, Any] = Field(
        default_factory=dict, description="Extra variables (templated)."
    )
    limit: str | None = Field(None, description="Host pattern to limit to (templated).")
    tags: list[NonBlank] = Field(default_factory=list, description="Only run these tags.")
    skip_tags: list[NonBlank] = Field(default_factory=list, description="Skip these tags.")
    check: bool = Field(False, description="Dry run: report changes without making them.")
    diff: bool = Field(False, description="Show file differences.")
    forks: int | None = Field(None, ge=1, le=1000, description="Parallel hosts.")
    become: bool = Field(False, description="Run tasks with privilege escalation.")
    env: EnvMap = Field(default_factory=dict, description="Environment variables (templated).")
