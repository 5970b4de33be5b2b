"""The ``ssh`` step's declaration: a command or script run on a set of hosts over SSH.

The executor (``opsflow.steps.ssh``) checks the rendered values again: a templated ``hosts``
or ``user`` is only known once the server renders it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from opsflow.spec.duration import Duration
from opsflow.spec.fields import (
    ConnectionName,
    EnvMap,
    FieldProblem,
    NonBlank,
    RelativePath,
    SpecModel,
)
from opsflow.spec.steps import StepBase
from opsflow.status import StepType


class SshInventory(SpecModel):
    """Hosts as an inventory: an inline group, or an Ansible inventory file or script."""

    hosts: list[NonBlank] | None = Field(None, min_length=1, description="Hosts to run on.")
    file: NonBlank | None = Field(
        None,
        description="Ansible inventory file (INI or YAML), relative to the workflow "
        "directory or absolute on the agent.",
    )
    script: RelativePath | None = Field(None, description="Dynamic inventory script.")
    pattern: NonBlank | None = Field(
        None, description="Ansible host pattern of the inventory, e.g. web:!web3; default all."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        given = [k for k in ("hosts", "file", "script") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give one of {hosts: [...]}, {file: INVENTORY} or {script: PATH}")
        if self.pattern is not None and self.hosts is not None:
            raise FieldProblem("pattern", "'pattern' goes with 'file' or 'script', not 'hosts'")
        return self


def _hosts_kind(value: Any) -> str:
    if isinstance(value, Mapping | SshInventory):  # a document's mapping, or a model dumped
        return "inventory"
    return "text" if isinstance(value, str) else "list"


HOSTS_SHAPES = frozenset({"list", "text", "inventory"})

# One branch per shape, chosen by the value's type, so a mistake is reported in that shape's
# terms (``hosts.pattern``) rather than once per shape it is not.
Hosts = Annotated[
    Annotated[list[NonBlank], Tag("list"), Field(min_length=1)]
    | Annotated[NonBlank, Tag("text")]
    | Annotated[SshInventory, Tag("inventory")],
    Discriminator(_hosts_kind),
]


class FailOn(StrEnum):
    ANY = "any"
    ALL = "all"


class SshStep(StepBase):
    """Run a command or a script on hosts over SSH; outputs per host and ``failed_hosts``."""

    type: Literal[StepType.SSH]
    hosts: Hosts = Field(
        description="Hosts as a list (host or host:port), a templated string of names "
        "separated by commas or spaces, or {hosts: [...]} / {file: INVENTORY, pattern: GROUP}."
    )
    connection: ConnectionName = Field(
        description="Name of the ssh connection to log in with (user, key, known_hosts)."
    )
    user: NonBlank | None = Field(None, description="Login user; defaults to the connection's.")
    port: int | None = Field(None, ge=1, le=65535, description="SSH port; default 22.")
    command: NonBlank | None = Field(
        None, description="Shell command run on each host (not templated; use env)."
    )
    script: RelativePath | None = Field(
        None, description="Script in the workflow directory, uploaded and run on each host."
    )
    env: EnvMap = Field(
        default_factory=dict, description="Environment variables of the remote command (templated)."
    )
    parallel: int = Field(10, ge=1, le=1000, description="How many hosts run at once.")
    fail_on: FailOn = Field(
        FailOn.ANY, description="any: the step fails when a host fails; all: when every host does."
    )
    host_timeout: Duration | None = Field(
        None, description="Limit per host, e.g. 5m; `timeout` limits the whole step."
    )
    sudo: bool = Field(False, description="Run the command with sudo -n on each host.")

    @field_validator("host_timeout")
    @classmethod
    def _host_timeout_positive(cls, value: float | None) -> float | None:
        if value == 0:
            raise ValueError("a host_timeout of 0 would stop every host at once; leave it out")
        return value

    @model_validator(mode="after")
    def _one_program(self) -> Self:
        if (self.command is None) == (self.script is None):
            raise ValueError(
                "give exactly one of 'command' (a shell line) or 'script' (a file in the "
                "workflow directory, uploaded to each host)"
            )
        return self
