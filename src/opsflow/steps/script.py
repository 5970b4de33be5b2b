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
import uuid
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
        files = _Files(_output_path(spec.workdir))
        try:
            config = StepConfig(spec.config)
            env = _environment(spec, config, files.output)
            program = _prepare(spec, config, env, files)
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
                prepare=files.write,
                finish=files.collect,
            )
        except _NotWritten as exc:  # a full disk, a read-only work dir: may pass
            log.write(LogStream.SYSTEM, str(exc), LogLevel.ERROR)
            return StepResult(JobStatus.FAILED, error=str(exc))
        except OSError as exc:
            message = f"could not start {program.argv[0]}: {exc.strerror or exc}"
            log.write(LogStream.SYSTEM, message, LogLevel.ERROR)
            return StepResult(JobStatus.FAILED, error=message, retryable=False)
        return _result(outcome, files, spec, log)


class _NotWritten(OSError):
    """A run's own file could not be written (the message says which and why)."""


class _Files:
    """A run's own files: the inline script (if any) and the output file. Written before the
    scope opens and read and removed after it closed, in the worker threads of
    `run_process` (blocking; never on the event loop)."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.inline: Path | None = None
        self.body = b""
        self.outputs: dict[str, Any] = {}
        self.error: OutputFileError | None = None
        self._written: list[Path] = []  # what `write` made: only these are removed

    def write(self) -> None:
        files = [(self.output, b"", True)]
        if self.inline is not None:
            files.append((self.inline, self.body, False))
        for path, data, exclusive in files:
            try:
                _create(path, data, exclusive=exclusive)
            except OSError as exc:
                raise _NotWritten(f"could not write {path}: {exc.strerror or exc}") from exc
            self._written.append(path)

    def collect(self) -> None:
        if self.output not in self._written:
            return  # nothing ran
        try:
            self.outputs = read_outputs(self.output)
        except OutputFileError as exc:
            self.error = exc
        finally:
            for path in self._written:
                path.unlink(missing_ok=True)


def _create(path: Path, data: bytes, *, exclusive: bool) -> None:
    """Write ``data`` to ``path`` in one open and write (a new file: mode 0600 for an output
    file made fresh, else 0666 less the umask, as ``open`` gives)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags | os.O_CLOEXEC, 0o600 if exclusive else 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _output_path(workdir: Path) -> Path:
    """A fresh path for one run's output file, beside the job's work dir (in the agent's work
    root, whose start-up sweep removes what a killed agent left): a directory made and
    removed per step cost about a millisecond of the event loop's time on this machine
    (mkdir, rmtree on ext4), and one made per process outlived servers stopped by a signal."""
    return workdir.parent / f".{workdir.name}-output-{uuid.uuid4().hex[:16]}"


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


def _prepare(spec: JobSpec, config: StepConfig, env: Mapping[str, str], files: _Files) -> _Program:
    """Decide what to execute, where, and how to describe it in the log (never env values);
    an inline body goes to ``files`` (written later, off the event loop)."""
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
    if has_run:
        body = config.text("run", required=True)
        assert body is not None
        safe_step = re.sub(r"[^A-Za-z0-9_-]", "_", spec.step_id)
        files.inline = root / f".opsflow-{safe_step}-{spec.attempt}{_SUFFIX[shell]}"
        files.body = (body if body.endswith("\n") else body + "\n").encode("utf-8")
        script, what = (
            files.inline,
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
    return _Program([*interpreter, str(script)], description, cwd)


def _interpreter(shell: str, env: Mapping[str, str]) -> list[str]:
    """The interpreter command line for ``shell``, looked up on the job's PATH."""
    path = env.get("PATH")
    if shell == "bash":
        return [
            _which("bash", path) or "bash",
            "--noprofile",
            "--norc",
            "-eo",
            "pipefail",
        ]
    if shell == "sh":
        return [_which("sh", path) or "sh", "-e"]
    if shell == "python":
        found = _which("python3", path)
        return [found or sys.executable, "-u"]  # -u: unbuffered, so lines stream as printed
    found = _which("node", path)
    if found is None:
        raise StepConfigError(
            "shell", "node is not installed on this agent (not on PATH); install Node.js"
        )
    return [found]


_found: dict[tuple[str, str | None], str] = {}


def _which(name: str, path: str | None) -> str | None:
    """``shutil.which(name, path=path)``, remembered per PATH: a remembered program is checked
    with one ``access`` call instead of a search through every PATH entry (a program that went
    away is looked up again; one installed earlier on PATH later is not seen until then)."""
    found = _found.get((name, path))
    if found is not None and os.access(found, os.X_OK):
        return found
    found = shutil.which(name, path=path)
    if found is not None:
        if len(_found) >= 64:  # steps that set PATH each their own way: stay bounded
            _found.clear()
        _found[(name, path)] = found
    return found


def _inside(root: Path, relative: str, field: str) -> Path:
    """Resolve ``relative`` under ``root``; refuse absolute paths and escapes like ``../``."""
    candidate = Path(relative)
    if candidate.is_absolute():
        raise StepConfigError(field, f"{relative!r} must be relative to the workflow's files")
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise StepConfigError(field, f"{relative!r} points outside the workflow's files")
    return resolved


def _result(outcome: ProcessOutcome, files: _Files, spec: JobSpec, log: LogSink) -> StepResult:
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
    outputs = dict(files.outputs)
    if files.error is not None:
        exc = files.error
        log.write(LogStream.SYSTEM, str(exc), LogLevel.ERROR)
        if error is None:
            return StepResult(
                JobStatus.FAILED, outputs={"exit_code": code}, error=str(exc), retryable=False
            )
    outputs["exit_code"] = code
    if error is not None:
        return StepResult(JobStatus.FAILED, outputs=outputs, error=error)
    return StepResult(JobStatus.COMPLETED, outputs=outputs)
