"""Run one command (or uploaded script) on one host over an SSH connection, and stop it for good.

The remote command line is built as an argument list and quoted with ``shlex.join``; nothing a
workflow gives is spliced into it by hand. It reads, for ``command: make deploy``::

    exec setsid -w sh -c '<the wrapper, _WRAPPER>' opsflow-ssh opsflow-env-end-<32 hex> 5 \\
        sh -c 'make deploy'

The step's ``env`` travels on the command's standard input, not its command line, as
``export NAME=value`` lines with each value quoted by ``shlex.quote``, then an end line
``opsflow-env-end-<32 hex>`` drawn at random for each job (and given to the wrapper in its
arguments, so no value, even one over several lines, can end the block early). The wrapper, a
POSIX ``sh`` snippet, reads the lines up to the end line, sets them, and ``exec``s the command
with its input at ``/dev/null``. So a value never appears in a process list on the host
(``ps`` shows every command line to every user), nor in sudo's log, and the login shell,
replaced by ``exec``, does not hold one either.

``setsid`` puts the command and everything it starts into a new session and process group
and the wrapper prints that group's id first. When the host's timeout passes or the step is
cancelled, a second channel on the same connection runs ``kill -s TERM -- -PGID``, then
``kill -s KILL`` once the grace period is over, and the channel is closed: nothing the command
started keeps running on the host. With ``sudo: true`` the line starts with ``sudo -n --``
(and the kills run through ``sudo -n`` too). A ``script`` is uploaded over SFTP into a fresh
``mktemp -d`` directory (mode 0700), run by its path, and removed afterwards.

The agent never ends the command's input: it stays open as long as the channel. When the
agent process dies (``kill -9``, a crash), its kernel closes the connection, sshd closes that
input, and a watcher the wrapper left in the group (``cat`` to end of input, then, if the
command is still running, ``kill -s TERM`` to the group and ``kill -s KILL`` after the grace
period, rounded up to whole seconds) stops everything the command started, so a retry of the
job does not run beside an orphan of the lost attempt. (A connection that goes silent
instead, the agent's machine powered off or cut off, closes when sshd's own keepalives give
up: its ``ClientAliveInterval``.) The watcher is not the command's child, holds none of its
output, and ends with the channel when the command ends on its own (then anything the
command left running in the background stays, as it would without opsflow). Input that ends
before the end line (the agent died while sending it) makes the wrapper exit with
``ENV_CUT_SHORT`` without running anything.

Hosts need a POSIX login shell and util-linux's ``setsid`` (every mainstream Linux has both).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import shlex
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncssh

from opsflow.status import JobStatus, LogLevel, LogStream

from .base import BulkLogSink, LogSink, format_seconds
from .lines import LineSplitter
from .ssh_hosts import Host
from .ssh_login import Login, SshFailed, accepted_new_key, connect

TAIL_LINES = 20
TAIL_CHARS = 4096
# What the stdout tails of all hosts may add up to: a step on 10,000 hosts keeps about 100
# characters of each, so its outputs stay a reasonable report.
TAILS_BUDGET = 1024 * 1024
_MARKER = b"opsflow-pgid "
# The wrapper's exit code when its input ends before the env block's last line: the agent
# died (or the connection broke) before the command started, so it never starts.
ENV_CUT_SHORT = 125
# Run by ``sh -c`` as the group leader, with $1 the env block's end line, $2 the grace in whole
# seconds and the rest the program. The watcher runs in a subshell whose parent exits at once,
# so the command has no stray child; its input is the channel's (fd 3: a background list's
# input would be /dev/null), its output /dev/null, so it never holds the channel's output open.
_WRAPPER = (
    'echo "opsflow-pgid $$"; opsflow_end=$1 opsflow_grace=$2; shift 2; opsflow_env=;'
    " while IFS= read -r opsflow_line; do"
    ' [ "$opsflow_line" = "$opsflow_end" ] && opsflow_end= && break;'
    ' opsflow_env="$opsflow_env$opsflow_line\n"; done;'
    f' [ -z "$opsflow_end" ] || exit {ENV_CUT_SHORT};'
    " ( ( trap '' TERM; cat; kill -0 $$ || exit 0; kill -s TERM -- -$$;"
    ' sleep "$opsflow_grace"; kill -s KILL -- -$$ ) <&3 >/dev/null 2>&1 3<&- & ) 3<&0;'
    ' eval "$opsflow_env" && exec "$@" </dev/null'
)
_KILL_TIMEOUT = 10.0


@dataclass(frozen=True)
class RemoteJob:
    """What to run on every host, and how long each may take.

    ``host_timeout`` and ``connect_timeout`` are seconds; ``grace`` is the seconds between
    SIGTERM and SIGKILL when a host is stopped (``force_grace`` for a forced cancel);
    ``tail_chars`` how much of each host's last stdout lines its outputs keep."""

    command: str | None
    script: Path | None
    env: Mapping[str, str]
    sudo: bool
    host_timeout: float | None
    connect_timeout: float
    grace: float
    force_grace: float
    tail_chars: int = TAIL_CHARS


@dataclass
class HostResult:
    """How one host ended: ``status`` is completed, failed, timeout or cancelled."""

    name: str
    status: JobStatus
    exit_code: int | None = None
    stdout_tail: str = ""
    duration_ms: int = 0
    error: str | None = None

    def output(self) -> dict[str, Any]:
        """The host's entry in the step's ``hosts`` output."""
        return {
            "status": self.status.value,
            "exit_code": self.exit_code,
            "stdout_tail": self.stdout_tail,
            "duration_ms": self.duration_ms,
            "error": self.error,
        }


class StopRequest:
    """Shared by every host of a step: set when the step is cancelled or timed out."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.forced = asyncio.Event()  # a forced cancel: cut the grace period short
        self.status = JobStatus.CANCELLED

    @property
    def force(self) -> bool:
        return self.forced.is_set()

    def stop(self, status: JobStatus, *, force: bool = False) -> None:
        if not self.event.is_set():
            self.status = status
        if force:
            self.forced.set()
        self.event.set()


class HostLog:
    """The step's log as one host writes to it: every line as ``[host] line``; the last
    stdout lines kept for ``stdout_tail``."""

    def __init__(self, log: LogSink, name: str, tail_chars: int = TAIL_CHARS) -> None:
        self._log = log
        self._tail_chars = tail_chars
        self._prefix = f"[{name}] "
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)

    def write(self, stream: LogStream, text: str, level: LogLevel | None = None) -> None:
        if stream is LogStream.STDOUT:
            self._tail.append(text)
        self._log.write(stream, self._prefix + text, level)

    def write_lines(self, stream: LogStream, texts: list[str]) -> None:
        if stream is LogStream.STDOUT:
            self._tail.extend(texts)
        lines = [self._prefix + text for text in texts]
        if isinstance(self._log, BulkLogSink):
            self._log.write_lines(stream, lines)
        else:
            for line in lines:
                self._log.write(stream, line)

    def tail(self) -> str:
        return "\n".join(self._tail)[-self._tail_chars :]


def remote_line(job: RemoteJob, program: list[str], end: str) -> str:
    """The command line the host's shell runs (see the module docstring); ``end`` is the env
    block's last line (``env_input``)."""
    grace = str(max(1, math.ceil(job.grace)))  # POSIX sleep takes whole seconds
    argv = ["setsid", "-w", "sh", "-c", _WRAPPER, "opsflow-ssh", end, grace, *program]
    if job.sudo:
        argv = ["sudo", "-n", "--", *argv]
    return "exec " + shlex.join(argv)


def env_input(env: Mapping[str, str]) -> tuple[bytes, str]:
    """What the wrapper reads from standard input, and its last line.

    One ``export NAME=value`` line per variable, the value quoted by ``shlex.quote`` (names
    are shell names: the step checked; a value may span lines), then the end line
    ``opsflow-env-end-<32 hex digits>``, random for each job and found in no value, so no
    value can end the block early."""
    block = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())
    while True:
        end = f"opsflow-env-end-{secrets.token_hex(16)}"
        if end not in block:
            return f"{block}{end}\n".encode(), end


async def run_on_host(
    host: Host, login: Login, job: RemoteJob, log: LogSink, stop: StopRequest
) -> HostResult:
    """Connect, run the job's command on ``host`` streaming its output, and say how it ended.
    Never raises for the host's own failures: they are in the result."""
    started = time.monotonic()
    out = HostLog(log, host.name, job.tail_chars)
    result = HostResult(host.name, JobStatus.FAILED)
    try:
        if stop.event.is_set():
            result.status, result.error = stop.status, "stopped before it started"
            return result
        try:
            connection = await _until_stopped(
                connect(host.target, login, job.connect_timeout), stop
            )
        except SshFailed as exc:
            result.error = exc.message
            out.write(LogStream.SYSTEM, exc.message, LogLevel.ERROR)
            return result
        if connection is None:
            result.status, result.error = stop.status, "stopped while connecting"
            return result
        accepted = accepted_new_key(connection, host.target)
        if accepted is not None:
            out.write(LogStream.SYSTEM, accepted, LogLevel.WARN)
        async with connection:
            await _run(connection, host, job, out, stop, result)
        return result
    finally:
        result.duration_ms = round((time.monotonic() - started) * 1000)
        result.stdout_tail = out.tail()


async def _until_stopped(work: Any, stop: StopRequest) -> asyncssh.SSHClientConnection | None:
    """``await work`` unless the stop comes first (then None, the work cancelled)."""
    task: asyncio.Task[asyncssh.SSHClientConnection] = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.event.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, SshFailed):
        connection = await task
        connection.close()
    return None


async def _run(
    connection: asyncssh.SSHClientConnection,
    host: Host,
    job: RemoteJob,
    out: HostLog,
    stop: StopRequest,
    result: HostResult,
) -> None:
    remote_dir: str | None = None
    try:
        if job.script is not None:
            remote_dir = await _upload(connection, job.script)
            program = [f"{remote_dir}/{job.script.name}"]
        else:
            assert job.command is not None
            program = ["sh", "-c", job.command]
        stdin, end = env_input(job.env)
        process = await connection.create_process(remote_line(job, program, end), encoding=None)
        # No EOF after it: the wrapper's watcher stops the command once the input ends, which
        # happens only when the channel goes away (this process or its connection died).
        process.stdin.write(stdin)
        await _supervise(connection, process, job, out, stop, result)
    except (asyncssh.Error, OSError) as exc:
        result.status = JobStatus.FAILED
        result.error = f"SSH failed on {host.target}: {exc}"
        out.write(LogStream.SYSTEM, result.error, LogLevel.ERROR)
    finally:
        if remote_dir is not None:
            with contextlib.suppress(asyncssh.Error, OSError, TimeoutError):
                async with asyncio.timeout(_KILL_TIMEOUT):
                    await connection.run(shlex.join(["rm", "-rf", "--", remote_dir]))


async def _upload(connection: asyncssh.SSHClientConnection, script: Path) -> str:
    made = await connection.run("mktemp -d", check=True)
    remote_dir = str(made.stdout).strip()
    async with connection.start_sftp_client() as sftp:
        await sftp.put(str(script), f"{remote_dir}/{script.name}")
        await sftp.chmod(f"{remote_dir}/{script.name}", 0o700)
    return remote_dir


async def _supervise(
    connection: asyncssh.SSHClientConnection,
    process: asyncssh.SSHClientProcess[bytes],
    job: RemoteJob,
    out: HostLog,
    stop: StopRequest,
    result: HostResult,
) -> None:
    """Stream output until the command ends, or stop its process group on a timeout/cancel."""
    group: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    readers = [
        asyncio.ensure_future(_pump(process.stdout, LogStream.STDOUT, out, group)),
        asyncio.ensure_future(_pump(process.stderr, LogStream.STDERR, out, None)),
    ]
    ended = asyncio.ensure_future(process.wait_closed())
    stopped = asyncio.ensure_future(stop.event.wait())
    try:
        done, _ = await asyncio.wait(
            {ended, stopped}, timeout=job.host_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if ended not in done:
            if stopped in done:
                result.status = stop.status
                result.error = (
                    "cancelled" if stop.status is JobStatus.CANCELLED else "step timed out"
                )
            else:
                assert job.host_timeout is not None
                result.status = JobStatus.TIMEOUT
                result.error = f"timed out after {format_seconds(job.host_timeout)}"
            await _stop_group(connection, group, job, stop, ended)
            process.close()
            out.write(LogStream.SYSTEM, f"stopped: {result.error}", LogLevel.ERROR)
        await asyncio.wait(readers, timeout=2)
    except asyncio.CancelledError:
        # The job's own task is cancelled (its agent is shutting down): closing the channel
        # alone would leave the command running on the host, so kill its group first.
        if not ended.done():
            quick = replace(job, grace=job.force_grace)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    _stop_group(connection, group, quick, stop, ended), _KILL_TIMEOUT
                )
        raise
    finally:
        for task in (*readers, ended, stopped):
            task.cancel()
    if result.status in (JobStatus.TIMEOUT, JobStatus.CANCELLED):
        return
    result.exit_code = process.exit_status
    if not group.done():
        # The wrapper never ran: the host lacks setsid or a POSIX shell, or sudo refused.
        result.error = (
            f"the command did not start (exit code {process.exit_status}); the host needs "
            "a POSIX shell and setsid (util-linux)" + (" and sudo -n rights" if job.sudo else "")
        )
    elif process.exit_signal is not None:
        result.error = f"killed by signal {process.exit_signal[0]}"
    elif process.exit_status != 0:
        result.error = f"exit code {process.exit_status}"
    result.status = JobStatus.COMPLETED if result.error is None else JobStatus.FAILED
    out.write(
        LogStream.SYSTEM,
        result.error or "exit code 0",
        LogLevel.INFO if result.error is None else LogLevel.ERROR,
    )


async def _pump(
    reader: asyncssh.SSHReader[bytes],
    stream: LogStream,
    out: HostLog,
    group: asyncio.Future[int] | None,
) -> None:
    """Copy one stream of the command into the log; on stdout, first take the wrapper's line
    with the process group id."""
    lines = LineSplitter(stream, out)
    head = b""
    while True:
        data = await reader.read(65536)
        if not data:
            break
        if group is not None and not group.done():
            head += data
            if b"\n" not in head:
                continue
            first, _, data = head.partition(b"\n")
            if first.startswith(_MARKER) and first[len(_MARKER) :].strip().isdigit():
                group.set_result(int(first[len(_MARKER) :]))
            else:
                data = head  # not our wrapper's line: hand it all to the log
                group = None
        if data:
            lines.feed(data)
    if group is not None and not group.done() and head:
        lines.feed(head)
    lines.close()


async def _stop_group(
    connection: asyncssh.SSHClientConnection,
    group: asyncio.Future[int],
    job: RemoteJob,
    stop: StopRequest,
    ended: asyncio.Future[None],
) -> None:
    """SIGTERM the command's process group, SIGKILL it once the grace period is over (or a
    forced cancel comes) if it is still running, over a second channel of the same
    connection."""
    try:
        pgid = await asyncio.wait_for(asyncio.shield(group), timeout=_KILL_TIMEOUT)
    except TimeoutError:
        return  # the wrapper never printed: nothing started under it
    prefix = ["sudo", "-n", "--"] if job.sudo else []

    async def kill(signal_name: str) -> None:
        line = shlex.join([*prefix, "kill", "-s", signal_name, "--", f"-{pgid}"])
        with contextlib.suppress(asyncssh.Error, OSError, TimeoutError):
            async with asyncio.timeout(_KILL_TIMEOUT):
                await connection.run(line)

    await kill("TERM")
    forced = asyncio.ensure_future(stop.forced.wait())
    try:
        grace = job.force_grace if stop.force else job.grace
        waiters: set[asyncio.Future[Any]] = {ended, forced}
        await asyncio.wait(waiters, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        if ended.done():
            return
        if forced.done() and not ended.done():  # the rest of a forced cancel's short grace
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(ended), timeout=job.force_grace)
                return
    finally:
        forced.cancel()
    await kill("KILL")
