"""The ``ansible`` step: run a real ``ansible-playbook`` prepared by ansible-runner.

Fields (rendered by the server): ``playbook`` (relative to the workflow's files), ``inventory``
(a path, ``{file}``, ``{hosts: [...]}`` or ``{script}``), ``extra_vars``, ``limit``, ``tags``,
``skip_tags``, ``check``, ``diff``, ``forks``, ``become``, ``env``. Outputs: ``stats`` per host
{ok, changed, failed, unreachable, skipped}, ``failed_tasks`` [{host, task, msg}] and ``rc``.

How it runs, and why. ansible-runner (``opsflow[ansible]``) prepares the job exactly as
``ansible_runner.run`` would: ``RunnerConfig.prepare()`` builds the ``ansible-playbook`` command
line, its private data directory and artifacts, and an environment that loads runner's
``awx_display`` event callback. We do not let runner *execute* it: runner's loop drives the
child through pexpect from a thread, polls for cancellation, merges stderr into a pty and kills
with SIGKILL only. Instead the command runs under ``opsflow.steps.process.run_process``, the
supervisor every program-running step shares: ``ansible-playbook``, its forked workers and
every module process they start live in one new process group, which a timeout or cancel stops
with SIGTERM and then SIGKILL, so a ``command: sleep 30`` task does not outlive the step. The
job events are decoded from the output as each line arrives (``opsflow.steps.ansible_events``),
so the log shows each task and host result while the playbook runs.

Isolation: each attempt gets ``<workdir>/.opsflow-ansible-<step>-<attempt>/`` holding runner's
files, ``ANSIBLE_HOME``, ``ANSIBLE_LOCAL_TEMP``, the fact cache and an empty ``ansible.cfg``
(used unless the workflow ships its own ``ansible.cfg``), so nothing from the agent user's
Ansible setup or from another job leaks in; it is removed afterwards because the extra-vars
file may hold secrets. Without an inventory the playbook sees only the implicit localhost, not
the agent's ``/etc/ansible/hosts``; an inventory that does not parse fails the step rather than
running on no hosts. Retry files are off. Host key checking stays on (it only concerns SSH;
``localhost`` entries use the local connection). The step's ``env`` overrides any of these
``ANSIBLE_*`` settings.

Extra vars go to Ansible as a file, every string marked ``!unsafe``: the server already rendered
them, and they may carry data from outside (webhook payloads, params), which Ansible must not
template a second time (``{{ lookup('pipe', ...) }}`` would run on the agent).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from opsflow.status import JobStatus, LogLevel, LogStream, StepType

from .ansible_events import EventOutput, PlaybookProgress
from .base import CancelSignal, JobSpec, LogSink, StepResult, format_seconds
from .config import StepConfig, StepConfigError
from .process import DEFAULT_GRACE, FORCE_GRACE, ProcessOutcome, Stop, run_process

INSTALL_HINT = (
    "ansible steps need ansible-core and ansible-runner on this agent: "
    "install opsflow[ansible] (pip install 'opsflow[ansible]')"
)
_AGENT_ENV_PREFIX = "OPSFLOW_"
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_T = TypeVar("_T")


@dataclass(frozen=True)
class _Plan:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    events_dir: Path
    description: str


class AnsibleExecutor:
    """Runs ``ansible`` steps; see the module docstring for fields, outputs and isolation.

    ``grace`` is how long a stopped playbook gets between SIGTERM and SIGKILL (``force_grace``
    for a forced cancel).
    """

    type = StepType.ANSIBLE

    def __init__(self, *, grace: float = DEFAULT_GRACE, force_grace: float = FORCE_GRACE) -> None:
        self.grace = grace
        self.force_grace = force_grace

    async def run(self, spec: JobSpec, log: LogSink, cancel: CancelSignal) -> StepResult:
        """Run the playbook, streaming task events into ``log``."""
        if cancel.requested:
            return StepResult(JobStatus.CANCELLED, error="cancelled before start", retryable=False)
        safe_step = re.sub(r"[^A-Za-z0-9_-]", "_", spec.step_id)
        private = spec.workdir.resolve() / f".opsflow-ansible-{safe_step}-{spec.attempt}"
        control_dir = Path(tempfile.mkdtemp(prefix="opsflow-ssh-"))  # short: a socket path
        try:
            try:
                plan = _prepare(spec, StepConfig(spec.config), private, control_dir, log)
            except StepConfigError as exc:
                log.write(LogStream.SYSTEM, str(exc), LogLevel.ERROR)
                return exc.result()
            except _CannotRun as exc:
                log.write(LogStream.SYSTEM, str(exc), LogLevel.ERROR)
                return StepResult(JobStatus.FAILED, error=str(exc), retryable=False)
            log.write(LogStream.SYSTEM, plan.description)
            progress = PlaybookProgress(log)
            output = EventOutput(log, progress, plan.events_dir)
            try:
                outcome = await run_process(
                    plan.argv,
                    cwd=plan.cwd,
                    env=plan.env,
                    log=output,
                    cancel=cancel,
                    timeout=spec.timeout,
                    grace=self.grace if spec.grace is None else spec.grace,
                    force_grace=self.force_grace,
                )
            except OSError as exc:
                message = f"could not start {plan.argv[0]}: {exc.strerror or exc}"
                log.write(LogStream.SYSTEM, message, LogLevel.ERROR)
                return StepResult(JobStatus.FAILED, error=message, retryable=False)
            finally:
                output.close()
            return _result(outcome, progress, spec, log)
        finally:
            shutil.rmtree(private, ignore_errors=True)
            shutil.rmtree(control_dir, ignore_errors=True)


class _CannotRun(Exception):
    """Ansible is not installed on this agent, or ansible-runner refused to prepare the run."""


def _prepare(
    spec: JobSpec, config: StepConfig, private: Path, control_dir: Path, log: LogSink
) -> _Plan:
    """Check the fields, write runner's private data directory, and build command and env."""
    root = spec.workdir.resolve()
    playbook = _inside(root, config.required_text("playbook"), "playbook")
    if not playbook.is_file():
        raise StepConfigError(
            "playbook", f"{playbook.relative_to(root)} does not exist in the workflow's files"
        )
    limit = config.text("limit")
    if limit is not None and (not limit.strip() or limit.lstrip().startswith("-")):
        raise StepConfigError("limit", "must be a host pattern such as 'web*:!web3'")
    tags = _tag_list(config, "tags")
    skip_tags = _tag_list(config, "skip_tags")
    forks = _forks(config)
    flags = [
        f"--{name}" for name in ("check", "diff", "become") if config.flag(name, default=False)
    ]
    extra_vars = config.raw("extra_vars")
    if extra_vars is not None and not isinstance(extra_vars, Mapping):
        raise StepConfigError("extra_vars", "must be a mapping of variable names to values")
    step_env = config.env_map("env")
    try:
        from ansible_runner import RunnerConfig
        from ansible_runner.exceptions import ConfigurationError
    except ImportError as exc:
        raise _CannotRun(INSTALL_HINT) from exc
    program = _ansible_playbook({**os.environ, **spec.env, **step_env}.get("PATH"))

    shutil.rmtree(private, ignore_errors=True)  # a leftover of an agent that died mid-run
    (private / "env").mkdir(parents=True, mode=0o700)
    inventory, inventory_text = _inventory(config, root, private, log)
    if extra_vars:
        _write_extra_vars(private / "env" / "extravars", extra_vars)
    isolation = _isolation_env(root, private, control_dir)
    requested = {**isolation, **spec.env, **step_env}
    runner = RunnerConfig(
        private_data_dir=str(private),
        project_dir=str(root),
        playbook=str(playbook),
        inventory=inventory,
        limit=limit,
        tags=",".join(tags) or None,
        skip_tags=",".join(skip_tags) or None,
        forks=forks,
        cmdline=" ".join(flags) or None,
        envvars=requested,
        ident="run",
        suppress_env_files=True,
    )
    try:
        runner.prepare()
    except ConfigurationError as exc:
        raise _CannotRun(f"ansible-runner could not prepare the run: {exc}") from exc
    argv = [program, *runner.command[1:]]
    env = {
        key: value
        for key, value in runner.env.items()
        if not key.startswith(_AGENT_ENV_PREFIX) or key in requested
    }
    chosen = {"limit": limit, "tags": ",".join(tags), "skip_tags": ",".join(skip_tags)}
    options = [*flags, *(f"{name} {value}" for name, value in chosen.items() if value)]
    options += [f"forks {forks}"] if forks else []
    description = (
        f"running ansible-playbook {playbook.relative_to(root).as_posix()} on {inventory_text}"
        f" ({', '.join(options) or 'no options'}; extra vars: "
        f"{', '.join(sorted(map(str, extra_vars or {}))) or 'none'}; "
        f"step env: {', '.join(sorted(step_env)) or 'none'})"
    )
    return _Plan(argv, env, root, Path(runner.artifact_dir) / "job_events", description)


def _ansible_playbook(path: str | None) -> str:
    """The ansible-playbook installed beside this Python (opsflow[ansible]), else the PATH one.

    The sibling comes first because it belongs to the same installation as the ansible-runner
    whose callback plugin we load.
    """
    sibling = Path(sys.executable).parent / "ansible-playbook"
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return str(sibling)
    found = shutil.which("ansible-playbook", path=path)
    if found is None:
        raise _CannotRun(f"ansible-playbook was not found; {INSTALL_HINT}")
    return found


def _isolation_env(root: Path, private: Path, control_dir: Path) -> dict[str, str]:
    """Ansible settings that keep one job's Ansible state apart from the agent's and others'."""
    home, local_temp = private / "home", private / "tmp"
    home.mkdir(mode=0o700)
    local_temp.mkdir(mode=0o700)
    shipped = root / "ansible.cfg"
    if shipped.is_file():
        ansible_cfg = shipped
    else:
        ansible_cfg = private / "ansible.cfg"
        ansible_cfg.write_text("# opsflow: no agent-wide Ansible configuration\n")
    return {
        "ANSIBLE_CONFIG": str(ansible_cfg),
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(local_temp),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        # An inventory that does not parse fails the step instead of running on no hosts.
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_NOCOLOR": "True",
        "PYTHONUNBUFFERED": "1",
    }


def _inventory(config: StepConfig, root: Path, private: Path, log: LogSink) -> tuple[str, str]:
    """The inventory path to pass with ``-i``, and how to describe it in the log."""
    value = config.raw("inventory")
    if value is None:
        # Not the agent's /etc/ansible/hosts: an empty inventory leaves the implicit localhost.
        path = private / "inventory.yml"
        path.write_text("all: {}\n", encoding="utf-8")
        return str(path), "the implicit localhost (no inventory given)"
    if isinstance(value, str):
        value = {"file": value}
    if not isinstance(value, Mapping):
        raise StepConfigError("inventory", "must be a file path, {hosts: [...]} or {script: PATH}")
    given = [key for key in ("file", "hosts", "script") if value.get(key) is not None]
    if len(given) != 1:
        raise StepConfigError(
            "inventory", "give exactly one of a file path, {hosts: [...]} or {script: PATH}"
        )
    kind = given[0]
    inner = StepConfig(value)
    if kind == "hosts":
        hosts = _in_inventory(lambda: inner.string_list("hosts", required=True))
        path = private / "inventory.yml"
        path.write_text(yaml.safe_dump(_hosts_inventory(hosts)), encoding="utf-8")
        return str(path), f"hosts {', '.join(hosts)}"
    relative = _in_inventory(lambda: inner.required_text(kind))
    if kind == "file":
        if Path(relative).is_absolute():  # an inventory kept on the agent
            target = Path(relative)
        else:
            target = _inside(root, relative, "inventory.file")
        if not target.exists():
            raise StepConfigError("inventory.file", f"{relative!r} does not exist")
        return str(target), f"inventory {relative}"
    script = _inside(root, relative, "inventory.script")
    if not script.is_file():
        raise StepConfigError(
            "inventory.script", f"{relative!r} does not exist in the workflow's files"
        )
    mode = script.stat().st_mode
    if not mode & stat.S_IXUSR:
        # This is the job's own copy of the file; uploads do not always keep the execute bit.
        script.chmod(mode | stat.S_IXUSR)
        log.write(LogStream.SYSTEM, f"made inventory script {relative} executable")
    return str(script), f"inventory script {relative}"


def _in_inventory(read: Callable[[], _T]) -> _T:
    """Read a field of ``inventory``, naming it ``inventory.<field>`` in errors."""
    try:
        return read()
    except StepConfigError as exc:
        raise StepConfigError(f"inventory.{exc.field}", exc.message) from None


def _hosts_inventory(hosts: list[str]) -> dict[str, Any]:
    """A YAML inventory of ``hosts``; local names run through the local connection."""
    entries: dict[str, Any] = {}
    for index, host in enumerate(hosts):
        if any(char.isspace() for char in host) or host.startswith(("[", "#", "-")):
            raise StepConfigError(
                f"inventory.hosts[{index}]", f"{host!r} is not a host name or address"
            )
        if host in _LOCAL_HOSTS:
            entries[host] = {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            }
        else:
            entries[host] = None
    return {"all": {"hosts": entries}}


class _Unsafe(str):
    """A string Ansible must never template (written with YAML's ``!unsafe`` tag)."""


class _ExtraVarsDumper(yaml.SafeDumper):
    pass


_ExtraVarsDumper.add_representer(
    _Unsafe, lambda dumper, value: dumper.represent_scalar("!unsafe", str(value))
)


def _write_extra_vars(path: Path, extra_vars: Mapping[Any, Any]) -> None:
    for key in extra_vars:
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise StepConfigError(
                f"extra_vars.{key}", "is not a valid Ansible variable name (letters, digits, _)"
            )
    document = yaml.dump(_mark_unsafe(dict(extra_vars)), Dumper=_ExtraVarsDumper, sort_keys=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(document)


def _mark_unsafe(value: Any) -> Any:
    if isinstance(value, str):
        return _Unsafe(value)
    if isinstance(value, Mapping):
        return {str(key): _mark_unsafe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_mark_unsafe(item) for item in value]
    return value


def _tag_list(config: StepConfig, name: str) -> list[str]:
    tags = config.string_list(name)
    for index, tag in enumerate(tags):
        if "," in tag:
            raise StepConfigError(f"{name}[{index}]", "one tag per entry, without commas")
    return tags


def _forks(config: StepConfig) -> int | None:
    value = config.raw("forks")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise StepConfigError("forks", f"must be a whole number from 1 to 1000, got {value!r}")
    return value


def _inside(root: Path, relative: str, field: str) -> Path:
    """Resolve ``relative`` under ``root``; refuse absolute paths and escapes like ``../``."""
    candidate = Path(relative)
    if candidate.is_absolute():
        raise StepConfigError(field, f"{relative!r} must be relative to the workflow's files")
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise StepConfigError(field, f"{relative!r} points outside the workflow's files")
    return resolved


def _result(
    outcome: ProcessOutcome, progress: PlaybookProgress, spec: JobSpec, log: LogSink
) -> StepResult:
    """Map how ansible-playbook ended, and what its events said, to a StepResult."""
    outputs: dict[str, Any] = {
        "stats": progress.stats,
        "failed_tasks": progress.failed_tasks,
        "rc": outcome.returncode,
    }
    if outcome.stopped is Stop.TIMEOUT:
        assert spec.timeout is not None
        error = f"timed out after {format_seconds(spec.timeout)}"
        return StepResult(JobStatus.TIMEOUT, outputs=outputs, error=error)
    if outcome.stopped is Stop.CANCEL:
        reason = "cancelled (forced)" if outcome.forced else "cancelled"
        return StepResult(JobStatus.CANCELLED, outputs=outputs, error=reason, retryable=False)
    code = outcome.returncode
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        log.write(LogStream.SYSTEM, f"ansible-playbook killed by signal {name}", LogLevel.ERROR)
        return StepResult(
            JobStatus.FAILED, outputs=outputs, error=f"ansible-playbook killed by signal {name}"
        )
    log.write(
        LogStream.SYSTEM,
        f"ansible-playbook exit code {code}",
        LogLevel.INFO if code == 0 else LogLevel.ERROR,
    )
    if code == 0:
        return StepResult(JobStatus.COMPLETED, outputs=outputs)
    error, retryable = progress.failure(code)
    return StepResult(JobStatus.FAILED, outputs=outputs, error=error, retryable=retryable)
