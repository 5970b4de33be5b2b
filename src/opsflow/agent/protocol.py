"""The agent protocol, version 1: what an agent and a server say to each other.

Every agent, the server's own in-process one included, speaks these types; a remote agent
sends them as JSON to ``/api/v1/agent/...`` (see ``docs/reference/agent-protocol.md``).

The rules the types carry:

- A claim hands over a job whole: its rendered config, the hash of its workflow files, the
  files earlier steps left for it, its timeout and the secrets it needs, already substituted
  (plus every secret value to mask). Nothing else ever carries a secret to an agent, and
  nothing an agent sends carries one back: masked first by the agent, again by the server.
- After the claim an agent names a job by ``JobRef`` only: id, lease token and epoch. The
  server takes execution, step and attempt from its own rows. A reference whose token or
  epoch is no longer the job's current lease is refused (HTTP 409, `StaleReport`).
- Log lines are numbered per job from 1 (``seq``), so a gap is visible.

The module imports nothing of the server: ``store`` reads ``LogLine`` from here, not the
other way round.
"""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from opsflow.spec.params import INT_MAX
from opsflow.status import JobStatus, LogLevel, LogStream, StepType

VERSION = 1
"""Bumped on an incompatible change; the routes live under ``/api/v1/agent/``."""

Count = Annotated[int, Field(ge=0, le=INT_MAX)]
"""A whole number on the wire: bounded to what JSON numbers hold exactly."""

LAST_SECOND = 253_402_300_799.0  # 9999-12-31T23:59:59Z, the last second a date can show
EpochSeconds = Annotated[float, Field(ge=0, le=LAST_SECOND, allow_inf_nan=False)]
"""A moment on the wire, in seconds since 1970: one the API can show as a date."""

MAX_WAIT_SECONDS = 30.0
"""The longest a claim waits for work before it answers with no jobs."""

MAX_BATCH_LINES = 5000
"""Most lines in one log batch (the final report's included)."""

MAX_BATCH_BYTES = 1024 * 1024
"""Most UTF-8 bytes (a byte more per line) in one log batch."""


class LogLine(NamedTuple):
    """One line as an agent numbered it: ``seq`` per job from 1, ``at`` in epoch seconds;
    ``level`` only on system lines (`level_of` fills the default).

    On the wire a line is the array ``[seq, at, stream, text, level]`` (level may be left
    out or null)."""

    seq: Count
    at: EpochSeconds
    stream: LogStream
    text: str
    level: LogLevel | None = None


def level_of(stream: LogStream, level: LogLevel | None) -> LogLevel | None:
    """The level a line is stored with: a system line's own, ``info`` when its writer gave
    none; program output never has one."""
    if stream is not LogStream.SYSTEM:
        return None
    return level or LogLevel.INFO


class _Message(BaseModel):
    # Bytes travel as base64 in JSON; in-process they stay bytes.
    model_config = ConfigDict(extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")


class JobRef(_Message):
    """How an agent names a job it holds: all it sends back about one."""

    job_id: str = Field(description="The job (one attempt of a step).")
    lease_token: str = Field(description="The token its claim returned.")
    epoch: Count = Field(description="The lease epoch its claim returned; each claim adds one.")


class Registration(_Message):
    """An agent says who it is, once per process start and again after a reconnect."""

    agent_id: str = Field(description="The agent's persistent id (kept in its work dir).")
    pools: list[str] = Field(
        default_factory=list,
        description="Pools it serves; empty means the pool its token is bound to.",
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Its labels, e.g. region=eu.")
    version: str = Field("", description="The agent's opsflow version.")
    concurrency: int = Field(1, ge=1, le=10_000, description="How many jobs it runs at once.")
    hostname: str = Field("", description="Where it runs, for operators.")
    restarted: bool = Field(
        True,
        description="True on a process start: the server fails what is still leased to this "
        "id as 'agent lost' at once (its previous process is gone). False on a reconnect.",
    )


class Registered(_Message):
    """The server's answer to `Registration`: the timings the agent must keep."""

    agent_id: str = Field(description="The agent's id, as registered.")
    pools: list[str] = Field(description="The pools the agent may claim from.")
    lease_seconds: float = Field(description="A lease lasts this long without a heartbeat.")
    heartbeat_seconds: float = Field(description="Heartbeat at least this often per job.")
    max_wait_seconds: float = Field(MAX_WAIT_SECONDS, description="Longest claim wait.")
    lost: int = Field(0, description="Attempts of the agent's previous process failed now.")


class ClaimRequest(_Message):
    """Ask for up to ``limit`` jobs, waiting up to ``wait`` seconds for one to be queued."""

    agent_id: str = Field(description="The agent's id, as registered.")
    pools: list[str] = Field(
        default_factory=list, description="Pools to claim from; empty means `default`."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="The agent's labels: a job needs all of its own."
    )
    limit: int = Field(1, ge=1, le=100, description="Free job slots.")
    wait: float = Field(
        0.0, ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait when nothing is queued."
    )
    claim_id: str | None = Field(
        None,
        min_length=8,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description=(
            "The agent's random id for this claim, sent again unchanged when it retries a "
            "claim whose answer it did not get (reset, cut off, 5xx). If an earlier try "
            "leased jobs that the agent has not started (or that the claim started, see "
            "`start`), the answer is those jobs again, with the same lease token and epoch, "
            "the same status and start time, and a renewed lease, and nothing new is leased "
            "(no second attempt). A new claim after an answer takes a new id."
        ),
    )
    resent: bool = Field(
        False,
        description=(
            "True when this `claim_id` was sent before and no answer came back: only then "
            "does the server look for what that try leased (and it does not wait first)."
        ),
    )
    start: bool = Field(
        False,
        description="The agent accepts started jobs: each job without a timeout is leased "
        "running by the claim itself (its start time and 'running' event in the claim's "
        "commit; `ClaimedJob.started` true) and the agent sends no `start` for it, a round "
        "trip and a transaction less before its process starts. A job with a timeout is "
        "still leased dispatched and started by `start`, which arms the timeout. A retried "
        "claim (`claim_id`, `resent`) is answered with the jobs it started too. An agent "
        "that dies before it gets the answer loses the attempt as any lost agent does: its "
        "lease runs out and the attempt counts as 'agent lost' against the step's retries. "
        "Left false (agents before this field), jobs are leased dispatched and each waits "
        "for its `start`, as before.",
    )


class ConnectionGrant(_Message):
    """A connection a job uses (issue 18): its name, type and decrypted values. Handed over
    only inside a claim, never sent back; every value is also in ``ClaimedJob.mask``."""

    name: str = Field(description="The connection's name, as the step names it.")
    type: str = Field(description="ssh, http, notify, terraform or git.")
    values: dict[str, str] = Field(
        default_factory=dict, description="Its fields, e.g. user, private_key, known_hosts."
    )


class ClaimedJob(_Message):
    """A job leased to the agent, with everything it needs to run it."""

    job_id: str = Field(description="The job: one attempt of one step.")
    lease_token: str = Field(description="This lease's random token (for `JobRef`).")
    epoch: int = Field(description="This lease's epoch (for `JobRef`): one more per claim.")
    execution_id: str = Field(description="For the job's environment and the agent's log.")
    step_id: str = Field(description="For the job's environment and the agent's log.")
    attempt: int = Field(description="1 for the first attempt, 2 for the first retry, ...")
    type: StepType = Field(description="The step type: which executor runs the job.")
    config: dict[str, Any] = Field(description="The rendered step config, secrets substituted.")
    bundle: str | None = Field(None, description="Content hash of the workflow's files.")
    inputs: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Files earlier steps left for this job: name -> {step, name}.",
    )
    timeout: float | None = Field(None, description="Seconds; the server enforces it too.")
    mask: list[str] = Field(
        default_factory=list,
        description="Secret values to mask in everything sent back (logs, outputs, errors).",
    )
    connection: ConnectionGrant | None = Field(
        None, description="The connection the step names (`connection:`), if any."
    )
    started: bool = Field(
        False,
        description="Already running: the claim started it (`ClaimRequest.start`); the agent "
        "sends no `start` for it (one sent anyway is answered as for a running job and "
        "changes nothing). The job's start time is the claim's: it includes the agent's "
        "work dir and files fetch.",
    )
    first_seq: Annotated[int, Field(ge=1, le=INT_MAX)] = Field(
        1,
        description="The seq to number the job's first log line with: 1, or past the lines "
        "an earlier claim of the same job stored before it was handed back.",
    )

    @property
    def ref(self) -> JobRef:
        # Not validated again: the fields are this message's own, validated already.
        return JobRef.model_construct(
            job_id=self.job_id, lease_token=self.lease_token, epoch=self.epoch
        )


class Claimed(_Message):
    """The answer to a claim: the jobs leased, maybe none (the wait ran out)."""

    jobs: list[ClaimedJob] = Field(default_factory=list, description="At most `limit` jobs.")


class CancelNotice(_Message):
    """The answer to a start or heartbeat: whether the server wants the job stopped. A start
    of a job already running under the same lease (its claim started it, or the start is
    sent again) is answered so too, and changes nothing but the lease's expiry."""

    requested: bool = Field(False, description="Stop the job (report it `cancelled`).")
    force: bool = Field(False, description="Stop at once (SIGKILL), not gracefully.")
    timed_out: bool = Field(False, description="The server stops it for its timeout.")


class LogBatch(_Message):
    """Lines of one job, in ``seq`` order, at most `MAX_BATCH_LINES` / `MAX_BATCH_BYTES`."""

    job: JobRef = Field(description="The job the lines are of.")
    lines: list[LogLine] = Field(description="Lines in `seq` order: `[seq, at, stream, text]`.")


class JobReport(_Message):
    """How a job ended, with its last log lines and the files it keeps for later steps."""

    job: JobRef = Field(description="The job that ended.")
    status: JobStatus = Field(description="completed, failed, timeout or cancelled.")
    outputs: dict[str, Any] = Field(
        default_factory=dict, description="The step's outputs, masked, for later steps."
    )
    error: str | None = Field(None, description="Why it did not complete, masked.")
    retryable: bool = Field(True, description="False when retrying cannot help.")
    exit_code: Annotated[int, Field(ge=-INT_MAX, le=INT_MAX)] | None = Field(
        None, description="The program's exit code, when it had one."
    )
    lines: list[LogLine] = Field(
        default_factory=list, description="The job's last log lines (a batch at most)."
    )
    artifacts: dict[str, bytes] = Field(
        default_factory=dict,
        description="Files later steps may fetch (e.g. a plan): name -> base64 in JSON.",
    )


class ArtifactRequest(_Message):
    """A file an earlier step of the job's execution left (e.g. a saved plan)."""

    job: JobRef = Field(description="The job that needs the file (its lease is renewed).")
    step_id: str = Field(description="The earlier step of the same execution that left it.")
    name: str = Field(description="The file's name, as that step kept it.")


class Leaving(_Message):
    """The agent stops (its drain ended, its jobs are reported): it is shown offline at once,
    not after the online timeout, until it registers again."""

    agent_id: str = Field(description="The agent's id, as registered.")


class HandBack(_Message):
    """Give a claimed job back unrun (the agent is draining): it is queued again."""

    job: JobRef = Field(description="The job handed back.")
