"""The ``ssh`` step: run a command or a script on a set of hosts over SSH (AsyncSSH).

Fields (rendered by the server): ``hosts`` (see ``opsflow.steps.ssh_hosts``), ``connection``
(the name of an ``ssh`` connection: user, key or password, known_hosts; required), ``user``
and ``port`` (override the connection's user and port 22), ``command`` (a shell line, never
templated) or ``script`` (a file of the workflow, uploaded over SFTP and run by its path),
``env`` (environment variables of the remote command, sent on its standard input as
``export NAME=value`` lines quoted by ``shlex``, never on a command line), ``parallel`` (hosts
at once, default 10), ``fail_on`` (``any``: the step fails when a host fails, the default;
``all``: only when every host fails), ``host_timeout`` (seconds per host; the common
``timeout`` limits the whole step), ``sudo``.

Each host's output goes to the step's log as ``[host] line``. Outputs: ``hosts``, per host
``{status, exit_code, stdout_tail, duration_ms, error}``, and ``failed_hosts`` (in the order
the step lists them). How a host's command is launched and stopped is in
``opsflow.steps.ssh_remote``; how the login works (host keys included) in
``opsflow.steps.ssh_login``. ``check_connection`` is what ``opsflow connections test`` does
for an ``ssh`` connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from opsflow.status import JobStatus, LogLevel, LogStream, StepType
from opsflow.words import counted

from .base import CancelSignal, JobSpec, LogSink, StepResult, format_seconds
from .config import StepConfig, StepConfigError
from .process import DEFAULT_GRACE, FORCE_GRACE

if TYPE_CHECKING:
    from .ssh_hosts import Host
    from .ssh_login import Login
    from .ssh_remote import HostResult, RemoteJob, StopRequest

# The modules below import AsyncSSH (about 30 MB): they are loaded by the first ssh step or
# connection test, in a worker thread (`_plan`, `load_modules`), not when the agent loads its
# executors, so an idle server does not hold them (tests/unit/test_server_imports.py).

DEFAULT_PARALLEL = 10
MAX_PARALLEL = 1000
CONNECT_TIMEOUT = 30.0


class SshExecutor:
    """Runs ``ssh`` steps; see the module docstring for fields and outputs.

    ``grace`` is how long a stopped host command gets between SIGTERM and SIGKILL
    (``force_grace`` for a forced cancel)."""

    type = StepType.SSH

    def __init__(self, *, grace: float = DEFAULT_GRACE, force_grace: float = FORCE_GRACE) -> None:
        self.grace = grace
        self.force_grace = force_grace

    async def run(self, spec: JobSpec, log: LogSink, cancel: CancelSignal) -> StepResult:
        """Run the command on every host, ``parallel`` at a time."""
        if cancel.requested:
            return StepResult(JobStatus.CANCELLED, error="cancelled before start", retryable=False)
        try:
            plan = await asyncio.to_thread(_plan, spec, self.grace, self.force_grace)
        except StepConfigError as exc:
            log.write(LogStream.SYSTEM, str(exc), LogLevel.ERROR)
            return exc.result()
        from .ssh_remote import StopRequest  # loaded by _plan

        hosts, login, job, parallel, fail_on = plan
        log.write(
            LogStream.SYSTEM,
            f"running {'script ' + job.script.name if job.script else 'a command'} on "
            f"{counted(len(hosts), 'host')}, {parallel} at a time, as {login.user!r}"
            f"{' with sudo' if job.sudo else ''} (fail_on {fail_on}; env: "
            f"{', '.join(sorted(job.env)) or 'none'})",
        )
        stop = StopRequest()
        watcher = asyncio.ensure_future(_watch(cancel, stop, spec.timeout))
        try:
            results = await _run_all(hosts, login, job, parallel, log, stop)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        return _result(results, fail_on, stop, spec, log)


def _plan(
    spec: JobSpec, grace: float, force_grace: float
) -> tuple[list[Host], Login, RemoteJob, int, str]:
    """Read and check every field (in a worker thread: an inventory is parsed by Ansible, and
    the SSH modules are imported here the first time)."""
    from .ssh_hosts import read_hosts
    from .ssh_login import Login, SshInvalid
    from .ssh_remote import TAIL_CHARS, TAILS_BUDGET, RemoteJob

    config = StepConfig(spec.config)
    connection = spec.connection
    if connection is None:
        name = config.text("connection")
        raise StepConfigError(
            "connection",
            f"connection {name!r} was not delivered with the job"
            if name
            else "is required: name an ssh connection (its user, key and known_hosts)",
        )
    if connection.type != "ssh":
        raise StepConfigError(
            "connection", f"{connection.name!r} is a {connection.type} connection, not ssh"
        )
    port = _port(config, connection.values)
    hosts = read_hosts(config, spec.workdir, port)
    try:
        login = Login.from_values(connection.values, user=config.text("user"))
    except SshInvalid as exc:
        raise StepConfigError("connection", f"{connection.name!r}: {exc.message}") from None
    command, script = config.text("command"), config.text("script")
    if (command is None) == (script is None):
        raise StepConfigError("command", "give exactly one of command or script")
    script_path = _script(spec.workdir, script) if script is not None else None
    if command is not None and not command.strip():
        raise StepConfigError("command", "must not be empty")
    parallel = _bounded(config, "parallel", DEFAULT_PARALLEL, MAX_PARALLEL)
    fail_on = config.choice("fail_on", ("any", "all"), default="any")
    host_timeout = _seconds(config, "host_timeout")
    job = RemoteJob(
        command=command,
        script=script_path,
        env=config.env_map("env"),
        sudo=config.flag("sudo", default=False),
        host_timeout=host_timeout,
        connect_timeout=min(CONNECT_TIMEOUT, host_timeout or CONNECT_TIMEOUT),
        grace=spec.grace if spec.grace is not None else grace,
        force_grace=force_grace,
        tail_chars=max(100, min(TAIL_CHARS, TAILS_BUDGET // len(hosts))),
    )
    return hosts, login, job, parallel, fail_on


def _port(config: StepConfig, values: Mapping[str, str]) -> int:
    from .ssh_login import DEFAULT_PORT

    port = config.raw("port")
    if port is None:
        text = values.get("port", "").strip()
        return int(text) if text.isdigit() and 1 <= int(text) <= 65535 else DEFAULT_PORT
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise StepConfigError("port", f"must be a port number from 1 to 65535, got {port!r}")
    return port


def _bounded(config: StepConfig, name: str, default: int, most: int) -> int:
    value = config.raw(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise StepConfigError(name, f"must be a whole number from 1 to {most}, got {value!r}")
    return value


def _seconds(config: StepConfig, name: str) -> float | None:
    value = config.raw(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise StepConfigError(name, f"must be a positive duration such as 30s, got {value!r}")
    return float(value)


def _script(workdir: Path, relative: str) -> Path:
    root = workdir.resolve()
    path = (root / relative).resolve()
    if Path(relative).is_absolute() or not path.is_relative_to(root):
        raise StepConfigError("script", f"{relative!r} must be a file inside the workflow's files")
    if not path.is_file():
        raise StepConfigError("script", f"{relative!r} does not exist in the workflow's files")
    return path


async def _watch(cancel: CancelSignal, stop: StopRequest, timeout: float | None) -> None:
    """Turn the agent's cancel (or the step's own timeout) into a stop of every host."""
    try:
        await asyncio.wait_for(cancel.wait(), timeout)
    except TimeoutError:
        stop.stop(JobStatus.TIMEOUT)
        return
    stop.stop(JobStatus.TIMEOUT if cancel.timed_out else JobStatus.CANCELLED, force=cancel.force)
    await cancel.wait_forced()
    stop.stop(stop.status, force=True)


async def _run_all(
    hosts: list[Host],
    login: Login,
    job: RemoteJob,
    parallel: int,
    log: LogSink,
    stop: StopRequest,
) -> list[HostResult]:
    from .ssh_remote import run_on_host

    slots = asyncio.Semaphore(parallel)

    async def one(host: Host) -> HostResult:
        async with slots:
            own = replace(login, user=host.user) if host.user else login
            return await run_on_host(host, own, job, log, stop)

    return list(await asyncio.gather(*(one(host) for host in hosts)))


def _result(
    results: list[HostResult], fail_on: str, stop: StopRequest, spec: JobSpec, log: LogSink
) -> StepResult:
    failed = [r.name for r in results if r.status is not JobStatus.COMPLETED]
    outputs = {
        "hosts": {r.name: r.output() for r in results},
        "failed_hosts": failed,
    }
    summary = f"{len(results) - len(failed)} of {counted(len(results), 'host')} succeeded"
    if stop.event.is_set():
        if stop.status is JobStatus.TIMEOUT:
            limit = format_seconds(spec.timeout) if spec.timeout else "its limit"
            error = f"timed out after {limit} ({summary})"
            return StepResult(JobStatus.TIMEOUT, outputs=outputs, error=error)
        error = f"cancelled{' (forced)' if stop.force else ''} ({summary})"
        return StepResult(JobStatus.CANCELLED, outputs=outputs, error=error, retryable=False)
    too_many = bool(failed) and (fail_on == "any" or len(failed) == len(results))
    if not too_many:
        level = LogLevel.WARN if failed else LogLevel.INFO
        tolerated = f"; failed: {', '.join(failed)} (fail_on all)" if failed else ""
        log.write(LogStream.SYSTEM, summary + tolerated, level)
        return StepResult(JobStatus.COMPLETED, outputs=outputs)
    error = f"failed on {', '.join(failed[:10])}{' ...' if len(failed) > 10 else ''} ({summary})"
    log.write(LogStream.SYSTEM, error, LogLevel.ERROR)
    return StepResult(JobStatus.FAILED, outputs=outputs, error=error)


async def check_connection(values: Mapping[str, str], timeout: float) -> None:
    """Log in with an ``ssh`` connection's values to its ``host`` (and ``port``) and run
    ``true``, all within ``timeout`` seconds.

    Returns None when that worked; raises ``SshFailed`` (an ``OpsflowError``) saying why not:
    ``SshInvalid`` for unusable values, ``SshHostKeyUnknown`` with the key's SHA256
    fingerprint and the known_hosts line that accepts it, ``SshLoginRefused``,
    ``SshUnreachable``. The values are those listed in ``opsflow.steps.ssh_login``.
    """
    await asyncio.to_thread(load_modules)
    from .ssh_login import DEFAULT_PORT, Login, SshFailed, SshInvalid, connect, parse_target

    host = values.get("host", "").strip()
    if not host:
        raise SshInvalid("the connection has no host to test against: set its host")
    port_text = values.get("port", "").strip() or str(DEFAULT_PORT)
    if not port_text.isdigit():
        raise SshInvalid(f"port: {port_text!r} is not a number; give the SSH port, e.g. 22")
    try:
        target = parse_target(host, default_port=int(port_text))
    except ValueError as exc:
        raise SshInvalid(f"host: {exc}") from None
    login = Login.from_values(values)
    try:
        async with asyncio.timeout(timeout):
            connection = await connect(target, login, timeout)
            async with connection:
                result = await connection.run("true", check=False)
    except TimeoutError:
        raise SshFailed(f"{target}: `true` did not finish within {timeout:g}s") from None
    if result.exit_status != 0:
        raise SshFailed(
            f"{target}: logged in, but `true` ended with exit code {result.exit_status}"
            f"{' (signal ' + str(result.exit_signal[0]) + ')' if result.exit_signal else ''}"
        )


def load_modules() -> None:
    """Import the SSH modules (and AsyncSSH, about 0.3 s): call it in a worker thread."""
    from . import ssh_remote  # noqa: F401  (it imports ssh_login and AsyncSSH)
