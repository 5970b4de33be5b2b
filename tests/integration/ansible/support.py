"""Helpers for the ansible executor tests: playbooks on disk, job specs, running a step."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opsflow.status import StepType
from opsflow.steps.ansible import AnsibleExecutor
from opsflow.steps.base import CancelSignal, JobSpec, StepResult

from ..steps.support import RecordingSink, job

# Host variables that make an inventory host run on this machine, with this Python.
LOCAL = f"ansible_connection=local ansible_python_interpreter={sys.executable}"


def write(workdir: Path, name: str, text: str) -> Path:
    """Write a file of the workflow (a playbook, template, inventory) and return its path."""
    path = workdir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def ansible_job(
    workdir: Path, config: Mapping[str, Any], *, timeout: float | None = None
) -> JobSpec:
    """A JobSpec for an ansible step; the inventory defaults to the inline host localhost."""
    fields = {"inventory": {"hosts": ["localhost"]}, **config}
    return job(workdir, StepType.ANSIBLE, fields, timeout=timeout)


async def run(
    spec: JobSpec,
    sink: RecordingSink,
    cancel: CancelSignal | None = None,
    executor: AnsibleExecutor | None = None,
) -> StepResult:
    return await (executor or AnsibleExecutor()).run(spec, sink, cancel or CancelSignal())
