"""The ``script`` step: run a bash, sh, python or node script in the job's working directory.

Fields: ``shell`` (bash | sh | python | node, default bash), ``run`` (inline body) or ``file``
(a path inside the workflow's files), ``env`` (rendered by the server), ``workdir`` (a
directory inside the workflow's files to run in).

The body is never templated or spliced into a command line: an inline ``run`` is written to a
hidden file and the interpreter is given that file, so values reach scripts only as data through
environment variables. bash runs with ``-eo pipefail`` and sh with ``-e``: a failing command
fails the step instead of being ignored.

Outputs: ``exit_code`` plus whatever the script writes to the file named by ``$OPSFLOW_OUTPUT``
(see ``opsflow.steps.outputs``).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsflow.status import JobStatus, LogLevel, LogStream, StepType
from opsflow.words import counted

from .base import CancelSignal, JobSpec, LogSink, StepResult, format_seconds
from .config import StepConfig, StepConfigError, connection_env, connection_of
from .outputs import OutputFileError, read_outputs
from .process import DEFAULT_GRACE, FORCE_GRACE, ProcessOutcome, Stop, run_process
from .scope import Tracking

SHELLS = ("bash", "sh", "python", "node")
_SUFFIX = {"bash": ".sh", "sh": ".sh", "python": ".py", "node": ".js"}
# Variables of the agent process that must not reach scripts (the agent's own token and
# settings); the server passes what a job should see through JobSpec.env.
_AGENT_ENV_PREFIX = "OPSFLOW_"


@dataclass(frozen=True)
class _Program:
    argv: list[str]
    description: str
    cwd: Path
    inline_file: Path | None


class ScriptExecutor:
    """Runs ``script`` steps as child processes in their own process group.

    ``grace`` is how long a stopped script gets between SIGTERM and SIGKILL (``force_grace`` for
    a forced cancel); ``tracking`` how the script's processes are held (see
    ``opsflow.steps.scope``).
    """

    type = StepType.SCRIPT

    def __init__(
        self,
        *,
        grace: float = DEFAULT_GRACE,
        force_grace: float = FORCE_GRACE,
        tracking: Tracking = Tracking.AUTO,
    ) -> None:
        self.grace = grace
        self.force_grace = force_grace
        self.tracking = tracking

    async def run(self, spec: JobSpec, log: LogSink, cancel: CancelSignal) -> StepResult:
        """Run the script; see the module docstring for fields and outputs."""
        if cancel.requested:
            return StepResult(JobStatus.CANCELLED, error="cancelled before start", retryable=False)
        out_dir = Path(tempfile.mkdtemp(prefix="opsflow-output-"))
        output_file = out_dir / "output"
        output_file.touch()
        program: _Program | None = None
        try:
            try:
                config = StepConfig(spec.config)
                env = _environment(spec, config, output_file)
                program = _prepare(spec, config, env)
            except StepConfigError as exc:
                log.write(LogStream.SYSTEM, str(exc), LogLevel.ERROR)
                return exc.result()
            log.write(LogStream.SYSTEM, program.description)
            try:
                outcome = await run_process(
                    program.argv,
                    cwd=program.cwd,
                    env=env,
                    log=log,
                    cancel=cancel,
                    timeout=spec.timeout,
                    grace=self.grace if spec.grace is None else spec.grace,
                    force_grace=self.force_grace,
                    tracking=self.tracking,
                )
            except OSError as exc:
                message = f"could not start {program.argv[0]}: {exc.strerror or exc}"
                log.write(LogStream.SYSTEM, message, LogLevel.ERROR)
                return StepResult(JobStatus.FAILED, error=message, retryable=False)
            return _result(outcome, output_file, spec, log)
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)
            if program is not None and program.inline_file is not None:
                program.inline_file.unlink(missing_ok=True)


def _environment(spec: JobSpec, config: StepConfig, output_file: Path) -> dict[str, str]:
    """The agent's environment (minus its own settings), then the server's, then the step's
    connection's (see `connection_env`), then the step's ``env``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_AGENT_ENV_PREFIX)}
    env.update(spec.env)
    connection = connection_of(spec)
    if connection is not None:
        env.update(connection_env(connection))
    env.update(config.env_map("env"))
    env["OPSFLOW_OUTPUT"] = str(output_file)
    return env


def _prepare(spec: JobSpec, config: StepConfig, env: Mapping[str, str]) -> _Program:
    """Decide what to execute, where, and how to describe it in the log (never env values)."""
    shell = config.choice("shell", SHELLS, default="bash")
    root = spec.workdir.resolve()
    cwd = root
    if config.has("workdir"):
        cwd = _inside(root, config.required_text("workdir"), "workdir")
        if not cwd.is_dir():
            raise StepConfigError("workdir", f"{cwd.relative_to(root)} is not a directory")
    has_run, has_file = config.has("run"), config.has("file")
    if has_run == has_file:
        raise StepConfigError("run", "give exactly one of `run` (inline script) or `file`")
    interpreter = _interpreter(shell, env)
    inline_file: Path | None = None
    if has_run:
        body = config.text("run", required=True)
        assert body is not None
        safe_step = re.sub(r"[^A-Za-z0-9_-]", "_", spec.step_id)
        inline_file = root / f".opsflow-{safe_step}-{spec.attempt}{_SUFFIX[shell]}"
        inline_file.write_text(body if body.endswith("\n") else body + "\n", encoding="utf-8")
        script, what = (
            inline_file,
            f"inline {shell} script ({counted(len(body.splitlines()), 'line')})",
        )
    else:
        script = _inside(root, config.required_text("file"), "file")
        if not script.is_file():
            raise StepConfigError(
                "file", f"{script.relative_to(root)} does not exist in the workflow's files"
            )
        what = f"{script.relative_to(root).as_posix()} with {shell}"
    names = ", ".join(sorted(config.env_map("env"))) or "none"
    where = f"./{cwd.relative_to(root).as_posix()}" if cwd != root else "the workflow's files"
    description = f"running {what} in {where} ({' '.join(interpreter)}; step env: {names})"
    return _Program([*interpreter, str(script)], description, cwd, inline_file)


def _interpreter(shell: str, env: Mapping[str, str]) -> list[str]:
    """The interpreter command line for ``shell``, looked up on the job's PATH."""
    path = env.get("PATH")
    if shell == "bash":
        return [
            shutil.which("bash", path=path) or "bash",
            "--noprofile",
            "--norc",
            "-eo",
            "pipefail",
        ]
    if shell == "sh":
        return [shutil.which("sh", path=path) or "sh", "-e"]
    if shell == "python":
        found = shutil.which("python3", path=path)
        return [found or sys.executable, "-u"]  # -u: unbuffered, so lines stream as printed
    found = shutil.which("node", path=path)
    if found is None:
        raise StepConfigError(
            "shell", "node is not installed on this agent (not on PATH); install Node.js"
        )
    return [found]


def _inside(root: Path, relative: str, field: str) -> Path:
    """Resolve ``relative`` under ``root``; refuse absolute paths and escapes like ``../``."""
    candidate = Path(relative)
    if candidate.is_absolute():
        raise StepConfigError(field, f"{relative!r} must be relative to the workflow's files")
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise StepConfigError(field, f"{relative!r} points outside the workflow's files")
    return resolved


def _result(outcome: ProcessOutcome, output_file: Path, spec: JobSpec, log: LogSink) -> StepResult:
    """Map how the process ended to a StepResult, reading outputs when it ran to its end."""
    if outcome.stopped is Stop.TIMEOUT:
        assert spec.timeout is not None
        return StepResult(
            JobStatus.TIMEOUT, error=f"timed out after {format_seconds(spec.timeout)}"
        )
    if outcome.stopped is Stop.CANCEL:
        reason = "cancelled (forced)" if outcome.forced else "cancelled"
        return StepResult(JobStatus.CANCELLED, error=reason, retryable=False)
    code = outcome.returncode
    error: str | None = None
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        error = f"killed by signal {name}"
        code = 128 - code
    elif code != 0:
        error = f"exit code {code}"
    log.write(LogStream.SYSTEM, error or "exit code 0", LogLevel.ERROR if error else LogLevel.INFO)
    outputs: dict[str, Any] = {}
    try:
        outputs = read_outputs(output_file)
    except OutputFileError as exc:
        log.write(LogStream.SYSTEM, str(exc), LogLevel.ERROR)
        if error is None:
            return StepResult(
                JobStatus.FAILED, outputs={"exit_code": code}, error=str(exc), retryable=False
            )
    outputs["exit_code"] = code
    if error is not None:
        return StepResult(JobStatus.FAILED, outputs=outputs, error=error)
    return StepResult(JobStatus.COMPLETED, outputs=outputs)
