"""Run a child process in its own process group, stream its output, and stop it for good.

Used by every executor that runs a program (script today; terraform and ansible can share it).
Why a process group: a step's script may start children and grandchildren (``sleep &``, a
pipeline, a server); a timeout or a cancel must stop all of them, and so must the end of the
step, so that nothing a job started outlives it. Processes that leave the group (``setsid``,
daemons) are held by the step's scope (``opsflow.steps.scope``: a cgroup, or a child subreaper
sweep). Everything gets SIGTERM first so programs can clean up, then SIGKILL once the grace
period is over.

Why a custom protocol rather than ``asyncio.subprocess.Process``: ``Process.wait()`` only
returns once the output pipes are closed, and a background grandchild holding them open would
hide the exit of the main process. ``process_exited`` reports the exit itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TypeVarTuple, Unpack, cast

from opsflow.status import LogLevel, LogStream

from .base import CancelSignal, FlowControl, LogSink, format_seconds
from .lines import LineSplitter
from .scope import OWNER_ENV, Scope, Tracking, open_scope

DEFAULT_GRACE = 5.0
FORCE_GRACE = 0.5
# After the process group is gone, how long to wait for pipes still held by a detached process
# (one that left the group with setsid) before we stop reading them.
PIPE_DRAIN_LIMIT = 2.0


_watcher_chosen = False
_Ts = TypeVarTuple("_Ts")


def _watch_children_with_pidfds() -> None:
    """On Python 3.11, make asyncio learn of a child's exit from a pidfd on the running event
    loop instead of its default watcher, a thread per child blocked in ``waitpid``: a thread
    started per step costs the server CPU (measured with ``benchmarks/fan_out_cpu.py``).
    Python 3.12 does this by itself (its ``PidfdChildWatcher``, which 3.11's is not: that one
    serves a single attached loop). A kernel without ``pidfd_open`` (Linux < 5.3, or a
    sandbox refusing it) keeps the default. Once per process, before the first child."""
    global _watcher_chosen
    if _watcher_chosen:
        return
    _watcher_chosen = True
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return

    class PidfdWatcher(asyncio.AbstractChildWatcher):
        """Python 3.12's ``PidfdChildWatcher``: each child on the loop that started it."""

        def add_child_handler(
            self, pid: int, callback: Callable[[int, int, Unpack[_Ts]], object], *args: *_Ts
        ) -> None:
            loop = asyncio.get_running_loop()
            pidfd = os.pidfd_open(pid)
            loop.add_reader(pidfd, self._reap, loop, pid, pidfd, callback, args)

        def _reap(
            self,
            loop: asyncio.AbstractEventLoop,
            pid: int,
            pidfd: int,
            callback: Callable[..., object],
            args: tuple[object, ...],
        ) -> None:
            loop.remove_reader(pidfd)
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:  # reaped elsewhere: as asyncio's own watchers say
                returncode = 255
            else:
                returncode = os.waitstatus_to_exitcode(status)
            os.close(pidfd)
            callback(pid, returncode, *args)

        def remove_child_handler(self, pid: int) -> bool:
            return True  # asyncio never calls it

        def attach_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
            pass

        def close(self) -> None:
            pass

        def is_active(self) -> bool:
            return True

        def __enter__(self) -> PidfdWatcher:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    asyncio.get_event_loop_policy().set_child_watcher(PidfdWatcher())


class Stop(Enum):
    """Why the process did not simply run to its end."""

    TIMEOUT = "timeout"
    CANCEL = "cancel"


@dataclass(frozen=True)
class ProcessOutcome:
    """How a supervised process ended.

    ``returncode`` follows ``subprocess``: negative for death by a signal. ``stopped`` says
    whether we stopped it (timeout or cancel), ``forced`` whether that stop was a forced cancel.
    """

    returncode: int
    stopped: Stop | None = None
    forced: bool = False


class _Protocol(asyncio.SubprocessProtocol):
    """Sends stdout/stderr bytes to line splitters and reports exit and pipe closure."""

    def __init__(self, log: LogSink, loop: asyncio.AbstractEventLoop) -> None:
        self.exited: asyncio.Future[None] = loop.create_future()
        self.pipes_closed: asyncio.Future[None] = loop.create_future()
        self._splitters = {
            1: LineSplitter(LogStream.STDOUT, log),
            2: LineSplitter(LogStream.STDERR, log),
        }
        self._open = {1, 2}
        self._flow = log if isinstance(log, FlowControl) else None
        self._transport: asyncio.SubprocessTransport | None = None
        self.paused = False
        self.was_paused = False  # since the drain began waiting (see ``_drain``)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's subprocess transport is not an asyncio.SubprocessTransport subclass.
        self._transport = cast(asyncio.SubprocessTransport, transport)

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        self._splitters[fd].feed(data.encode() if isinstance(data, str) else data)
        if self._flow is not None and not self.paused and self._flow.congested:
            # Backpressure: the output waits in the pipe (and the process blocks on a full
            # pipe) until the log's backlog has been stored.
            self.paused = self.was_paused = True
            self._pipes(pause=True)
            self._flow.when_drained(self._resume)

    def _resume(self) -> None:
        self.paused = False
        self._pipes(pause=False)

    def _pipes(self, *, pause: bool) -> None:
        if self._transport is None:
            return
        for fd in self._open:
            pipe = self._transport.get_pipe_transport(fd)
            if pipe is None or pipe.is_closing():
                continue
            if pause:
                cast(asyncio.ReadTransport, pipe).pause_reading()
            else:
                cast(asyncio.ReadTransport, pipe).resume_reading()

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd in self._open:
            self._open.discard(fd)
            self._splitters[fd].close()
        if not self._open and not self.pipes_closed.done():
            self.pipes_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: LogSink,
    cancel: CancelSignal,
    timeout: float | None,
    grace: float = DEFAULT_GRACE,
    force_grace: float = FORCE_GRACE,
    tracking: Tracking = Tracking.AUTO,
    prepare: Callable[[], object] | None = None,
    finish: Callable[[], object] | None = None,
) -> ProcessOutcome:
    """Run ``argv`` until it exits, times out or is cancelled; stream its output to ``log``.

    Raises ``OSError`` when the program cannot be started (not found, not executable), and
    ``ScopeUnavailable`` when ``tracking`` names a means this machine lacks. On return, no
    process the program started is left running, whatever happened: not in its group, and not
    one that left the group (``setsid``, a double-forking daemon), tracked by ``tracking``.

    ``prepare`` and ``finish`` are the caller's blocking file work (a script file to write, an
    output file to read and remove), run in the worker threads that open and close the scope
    rather than on the event loop or in threads of their own (each hop costs the server CPU:
    ``benchmarks/README.md``, "The script step's process start"). ``prepare`` runs before the
    scope opens and may raise (nothing runs then); ``finish`` runs once whatever happened
    (also when ``prepare`` or the start failed), after the program's processes are gone.
    """
    loop = asyncio.get_running_loop()
    _watch_children_with_pidfds()
    try:
        scope = await asyncio.to_thread(_open, tracking, env.get(OWNER_ENV, ""), prepare)
    except BaseException:
        if finish is not None:
            await asyncio.to_thread(finish)
        raise
    try:
        transport, protocol = await loop.subprocess_exec(
            lambda: _Protocol(log, loop),
            *scope.command(argv, env),
            cwd=cwd,
            env=scope.environment(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except BaseException:
        await asyncio.to_thread(_close, scope, finish)
        raise
    pgid = transport.get_pid()  # leader of its own new session, so its pid is the group id
    scope.started(pgid)
    stopped: Stop | None = None
    forced = False
    finished = False
    closed = False
    try:
        cancel_wait = asyncio.ensure_future(cancel.wait())
        try:
            done, _ = await asyncio.wait(
                {protocol.exited, cancel_wait},
                timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            cancel_wait.cancel()
        if not protocol.exited.done():
            cancelled = cancel_wait in done and not cancel.timed_out
            stopped = Stop.CANCEL if cancelled else Stop.TIMEOUT
            if stopped is Stop.TIMEOUT:
                # Our own clock, or the server's (its stop arrives as a timed-out cancel).
                after = f" after {format_seconds(timeout)}" if timeout is not None else ""
                log.write(LogStream.SYSTEM, f"timed out{after}", LogLevel.ERROR)
            forced = await _stop(pgid, scope, protocol, log, cancel, grace, force_grace)
        else:
            # The scope is emptied and closed (with ``finish``) in one hop, before the drain:
            # once its processes are gone nothing is left to hold it.
            closed = True
            await _kill_leftovers(pgid, scope, log, finish)
        await _drain(protocol, transport, log)
        finished = True
    finally:
        if not finished:  # this task itself was cancelled: leave nothing running behind
            _signal_group(pgid, signal.SIGKILL)
            scope.kill_all()
        transport.close()
        if finished and not closed:
            await asyncio.to_thread(_close, scope, finish)
        elif not finished:
            _close(scope, None if closed else finish)
    returncode = transport.get_returncode()
    assert returncode is not None
    return ProcessOutcome(returncode, stopped, forced)


async def _stop(
    pgid: int,
    scope: Scope,
    protocol: _Protocol,
    log: LogSink,
    cancel: CancelSignal,
    grace: float,
    force_grace: float,
) -> bool:
    """SIGTERM every process of the step, wait for the main process up to the grace period,
    then SIGKILL all of them.

    A forced cancel, from the start or arriving during the grace period, shortens the wait to
    ``force_grace``. Returns whether the stop was forced.
    """
    forced = cancel.force
    wait_for = force_grace if forced else grace
    log.write(
        LogStream.SYSTEM,
        f"stopping the step's processes: SIGTERM, then SIGKILL after {format_seconds(wait_for)}",
        LogLevel.WARN,
    )
    _signal_group(pgid, signal.SIGTERM)
    await asyncio.to_thread(scope.signal_all, signal.SIGTERM)
    if not forced:
        forced_wait = asyncio.ensure_future(cancel.wait_forced())
        try:
            done, _ = await asyncio.wait(
                {protocol.exited, forced_wait}, timeout=grace, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            forced_wait.cancel()
        if forced_wait in done and not protocol.exited.done():
            forced = True
            log.write(LogStream.SYSTEM, "forced cancel: shortening the grace period", LogLevel.WARN)
    if forced and not protocol.exited.done():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(protocol.exited), force_grace)
    if not protocol.exited.done():
        log.write(
            LogStream.SYSTEM,
            "the process did not exit after SIGTERM; sending SIGKILL",
            LogLevel.WARN,
        )
    _signal_group(pgid, signal.SIGKILL)
    await asyncio.to_thread(scope.kill_all)
    await protocol.exited
    return forced


def _open(
    tracking: Tracking, owner: str, prepare: Callable[[], object] | None
) -> Scope:  # blocking: a worker thread's
    if prepare is not None:
        prepare()
    return open_scope(tracking, owner)


def _close(scope: Scope, finish: Callable[[], object] | None) -> None:  # blocking
    try:
        scope.close()
    finally:
        if finish is not None:
            finish()


def _kill_close(scope: Scope, finish: Callable[[], object] | None) -> int:  # blocking
    try:
        return scope.kill_all()
    finally:
        _close(scope, finish)


async def _kill_leftovers(
    pgid: int, scope: Scope, log: LogSink, finish: Callable[[], object] | None
) -> None:
    """SIGKILL whatever the main process left running: in its group (``cmd &`` without wait)
    and anywhere else in its scope (``setsid cmd &``, daemons); then close the scope and run
    ``finish``, in the same worker thread."""
    in_group = _group_exists(pgid) and _signal_group(pgid, signal.SIGKILL)
    elsewhere = await asyncio.to_thread(_kill_close, scope, finish)
    if in_group or elsewhere:
        log.write(
            LogStream.SYSTEM, "stopped background processes the step left running", LogLevel.WARN
        )


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


async def _drain(protocol: _Protocol, transport: asyncio.SubprocessTransport, log: LogSink) -> None:
    """Read the output still in the pipes; give up on pipes held open by a detached process."""
    while True:
        protocol.was_paused = protocol.paused
        try:
            await asyncio.wait_for(asyncio.shield(protocol.pipes_closed), PIPE_DRAIN_LIMIT)
            return
        except TimeoutError:
            if protocol.was_paused:
                continue  # we held the pipes ourselves while the log caught up: not detached
        log.write(
            LogStream.SYSTEM,
            "stopped reading output: a detached process still holds the step's stdout/stderr",
            LogLevel.WARN,
        )
        for fd in (1, 2):
            pipe = transport.get_pipe_transport(fd)
            if pipe is not None:
                pipe.close()
        return


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to the whole group; False if the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True
