"""The one interface every agent-side step executor implements.

An agent hands an executor a fully rendered ``JobSpec`` (one attempt of one step), a ``LogSink``
for the job's log lines and a ``CancelSignal``; the executor returns a ``StepResult``. Executors
are asyncio-native and never block the event loop: a single agent runs many jobs at once on one
loop, and the loop also carries its heartbeats and log batches.

Retry *intent* is data (``StepResult.retryable``); whether and when to retry is the engine's
decision, never the executor's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from opsflow.status import JobStatus, LogLevel, LogStream, StepType


@dataclass(frozen=True)
class Connection:
    """A named, typed set of credentials a step uses (``connection: prod-ssh``), decrypted,
    as the claim delivered it. ``values`` holds the type's fields (for ``ssh``: user,
    private_key or password, known_hosts, jump_host, ...); all are masked in the job's log."""

    name: str
    type: str
    values: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobSpec:
    """One attempt of one step, as the server sends it to an agent.

    ``config`` holds the step's YAML fields with templates already rendered by the server (a
    script's ``run`` body is never templated) and durations in seconds. ``workdir`` is a fresh
    directory holding a copy of the workflow version's files. ``secrets`` lists values the
    agent's log sink masks; executors only pass them through.
    """

    job_id: str
    execution_id: str
    step_id: str
    attempt: int
    type: StepType
    config: Mapping[str, Any]
    workdir: Path
    timeout: float | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    # Files another step of the run produced (e.g. the plan a Terraform apply applies), placed
    # on this agent by the agent before the run: name -> local path.
    inputs: Mapping[str, Path] = field(default_factory=dict)
    # How to reach the server from a step's process (Terraform's state backend): base URL,
    # and credentials valid only while this job holds its lease.
    server_url: str | None = None
    job_credentials: tuple[str, str] | None = None  # (job id, lease token)
    # Seconds a stopped step's processes get between SIGTERM and SIGKILL; None: the
    # executor's own default (5 s for scripts, as documented).
    grace: float | None = None
    # The connection the step names, delivered inside the claim only (issue 18).
    connection: Connection | None = None


class LogSink(Protocol):
    """Where an executor sends the job's log, one line at a time (no trailing newline).

    ``level`` says how serious one of the executor's own lines (``LogStream.SYSTEM``) is:
    ``ERROR`` for why the step failed, ``WARN`` for what the reader should notice, ``INFO``
    (the default) for progress. Program output (stdout, stderr) takes none."""

    def write(self, stream: LogStream, text: str, level: LogLevel | None = None) -> None: ...


@runtime_checkable
class BulkLogSink(Protocol):
    """A sink that takes many lines of one stream at once (cheaper than a call per line)."""

    def write(self, stream: LogStream, text: str, level: LogLevel | None = None) -> None: ...

    def write_lines(self, stream: LogStream, texts: list[str]) -> None: ...


@runtime_checkable
class FlowControl(Protocol):
    """A sink that can fall behind says so: an executor reading a process's output pauses
    reading while ``congested`` and resumes when ``when_drained`` calls back, so a step that
    prints faster than its lines are stored waits in its pipe instead of in memory."""

    @property
    def congested(self) -> bool: ...

    def when_drained(self, callback: Callable[[], None]) -> None: ...


@dataclass(frozen=True)
class StepResult:
    """How one attempt ended.

    ``status`` is COMPLETED, FAILED, TIMEOUT or CANCELLED. ``error`` is a short human-readable
    reason whenever the status is not COMPLETED. ``retryable`` is False when running the same
    attempt again cannot help (bad configuration, an HTTP 4xx other than 429, a cancel).
    """

    status: JobStatus
    outputs: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    retryable: bool = True
    # Files to keep on the server for later steps (e.g. a saved plan): name -> local path.
    artifacts: Mapping[str, Path] = field(default_factory=dict)


class CancelSignal:
    """Set by the agent when the server asks to stop this job; awaited by the executor.

    A graceful request lets the executor stop its work politely (SIGTERM, then SIGKILL after a
    grace period); a forced one shortens that grace to well under two seconds. A graceful request
    may later be upgraded to a forced one, and executors already waiting out the grace period
    react to the upgrade (``wait_forced``). ``time_out`` is a graceful stop because the step's
    timeout has passed by the server's clock: the attempt ends as timed out, not cancelled.
    Call ``request`` and ``time_out`` from the event loop's thread.
    """

    def __init__(self) -> None:
        self._requested = asyncio.Event()
        self._forced = asyncio.Event()
        self._timed_out = False

    def request(self, force: bool) -> None:
        """Ask the job to stop; ``force`` asks it to stop now rather than cleanly."""
        if force:
            self._forced.set()
        self._requested.set()

    def time_out(self) -> None:
        """Stop because the step's timeout has passed (with the normal grace)."""
        if not self._requested.is_set():
            self._timed_out = True
        self._requested.set()

    @property
    def timed_out(self) -> bool:
        """Whether the stop is the step's timeout rather than a cancel."""
        return self._timed_out

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self._requested.is_set()

    @property
    def force(self) -> bool:
        """Whether the stop must be quick (a forced cancel)."""
        return self._forced.is_set()

    async def wait(self) -> None:
        """Return once a stop is requested."""
        await self._requested.wait()

    async def wait_forced(self) -> None:
        """Return once a forced stop is requested (possibly after a graceful one)."""
        await self._forced.wait()


class Executor(Protocol):
    """Runs one step type on an agent. Adding a step type is one module plus one registration."""

    type: StepType

    async def run(self, spec: JobSpec, log: LogSink, cancel: CancelSignal) -> StepResult: ...


def format_seconds(seconds: float) -> str:
    """``10.0 -> "10s"``, ``0.5 -> "0.5s"``: durations as users wrote them in error messages."""
    return f"{seconds:g}s"
