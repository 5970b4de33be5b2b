"""The jobs table is the queue: pending -> dispatched -> running -> completed | failed |
timeout | cancelled.

Ownership of a dispatched job is a lease (a random token with an expiry), never a host name or
a process id. Every report names the job and its lease token and is a compare-and-set on both,
so an agent presumed dead that comes back cannot report over its successor. On PostgreSQL
claims use ``FOR UPDATE SKIP LOCKED`` so any number of agents share the queue; on SQLite the
write transaction already serializes claimers.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    case,
    column,
    exists,
    func,
    insert,
    select,
    table,
    true,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsflow.errors import NotFound, StaleReport
from opsflow.status import JobStatus, StepStatus
from opsflow.store.base import Base, JSONType
from opsflow.store.direct import Direct, DirectByKeys
from opsflow.store.runs import ST, Step

IN_FLIGHT = (JobStatus.DISPATCHED.value, JobStatus.RUNNING.value)


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("execution_id", "step_id", "attempt"),
        Index("ix_jobs_queue", "status", "pool", "created_at"),
        Index("ix_jobs_lease", "status", "lease_expires_at"),
        # A fanned-out step's jobs by status and item, read without touching the rows (whose
        # spec and outputs make them wide) for the items that completed.
        Index("ix_jobs_step_items", "execution_id", "step_id", "status", "item", "attempt"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("executions.id", ondelete="CASCADE"), index=True
    )
    step_id: Mapped[str] = mapped_column(String(100))
    attempt: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    pool: Mapped[str] = mapped_column(String(100), default="default")
    labels: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    timeout: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    dispatched_at: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    agent_id: Mapped[str | None] = mapped_column(String(100))
    lease_token: Mapped[str | None] = mapped_column(String(64))
    # Each claim of the job adds one: an agent names its lease by token and epoch, and a
    # reference to an older claim (the job was handed back and claimed again) is refused.
    lease_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_expires_at: Mapped[float | None] = mapped_column(Float)
    # The agent's id for the claim that leased the job: an agent that did not get the claim's
    # answer (a replica died after its commit, a connection cut) sends the claim again with
    # the same id, and is answered with the same lease instead of the job waiting it out.
    claim_id: Mapped[str | None] = mapped_column(String(64))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    retryable: Mapped[bool] = mapped_column(Boolean, default=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_force: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_as: Mapped[str | None] = mapped_column(String(16))
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    # "run" for an attempt of the step; "cleanup" for the undo work after a cancel with
    # cleanup (e.g. Terraform destroy). Cleanup jobs are not attempts in the engine's eyes.
    purpose: Mapped[str] = mapped_column(String(16), default="run", server_default="run")
    # Files the job left for later steps (e.g. a saved plan): name -> blob digest.
    artifacts: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # The item of a fanned-out step this attempt runs (0-based); NULL for other steps.
    item: Mapped[int | None] = mapped_column(Integer)


JOBS: Table = cast(Table, JobRow.__table__)


@dataclass(frozen=True)
class Job:
    id: str
    execution_id: str
    step_id: str
    attempt: int
    type: str
    status: JobStatus
    pool: str
    labels: dict[str, Any]
    spec: dict[str, Any]
    timeout: float | None
    created_at: float
    dispatched_at: float | None
    started_at: float | None
    ended_at: float | None
    agent_id: str | None
    lease_token: str | None
    lease_expires_at: float | None
    exit_code: int | None
    outputs: dict[str, Any]
    error: str | None
    retryable: bool
    cancel_requested: bool
    cancel_force: bool
    cancel_as: str | None
    last_seq: int
    purpose: str = "run"
    artifacts: dict[str, Any] = field(default_factory=dict)
    lease_epoch: int = 0
    item: int | None = None
    claim_id: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> Job:
        return cls.from_mapping(dict(row._mapping))

    @classmethod
    def from_mapping(cls, m: dict[str, Any]) -> Job:
        """The job of a row's values by column name (``m`` is changed)."""
        m["status"] = JobStatus(m["status"])
        m["labels"] = m["labels"] or {}
        m["spec"] = m["spec"] or {}
        m["artifacts"] = m.get("artifacts") or {}
        m["outputs"] = m["outputs"] or {}
        m["retryable"] = bool(m["retryable"])
        m["cancel_requested"] = bool(m["cancel_requested"])
        m["cancel_force"] = bool(m["cancel_force"])
        return cls(**m)

    @staticmethod
    def from_values(values: dict[str, Any]) -> Job:
        return _from_values(values)


_JOB_DEFAULTS: dict[str, Any] = {
    "pool": "default",
    "labels": {},
    "spec": {},
    "timeout": None,
    "dispatched_at": None,
    "started_at": None,
    "ended_at": None,
    "agent_id": None,
    "lease_token": None,
    "lease_epoch": 0,
    "lease_expires_at": None,
    "exit_code": None,
    "outputs": {},
    "error": None,
    "retryable": True,
    "cancel_requested": False,
    "cancel_force": False,
    "cancel_as": None,
    "last_seq": 0,
    "purpose": "run",
    "artifacts": {},
    "item": None,
}


def _from_values(values: dict[str, Any]) -> Job:
    """The job as just inserted, without reading it back."""
    merged = {**_JOB_DEFAULTS, **values}
    merged["status"] = JobStatus(merged["status"])
    merged["artifacts"] = merged["artifacts"] or {}
    return Job(**merged)


@dataclass(frozen=True)
class CancelNotice:
    """What a heartbeat tells the agent: stop this job, and how hard.

    ``timed_out`` says the stop is the step's own timeout (the server's clock passed it): the
    agent stops the job with the normal grace and reports it timed out, never as a forced
    cancel, whatever ``cancel_force`` the engine stored to have an in-flight job stopped.
    """

    requested: bool
    force: bool
    timed_out: bool = False

    @classmethod
    def from_row(cls, row: Any) -> CancelNotice:
        timed_out = bool(row.cancel_requested) and row.cancel_as == JobStatus.TIMEOUT.value
        return cls(bool(row.cancel_requested), bool(row.cancel_force) and not timed_out, timed_out)


def with_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """A new job's row: ``values`` with the columns it leaves out at their defaults."""
    return {**_JOB_DEFAULTS, **values}


def insert_job(session: Session, values: dict[str, Any]) -> None:
    row = with_defaults(values)
    _INSERTS_OF_JOBS[tuple(row)].run(session, row)


def jobs_of_execution(session: Session, execution_id: str) -> list[Job]:
    rows = session.connection().execute(
        select(JOBS)
        .where(JOBS.c.execution_id == execution_id)
        .order_by(JOBS.c.created_at, JOBS.c.attempt)
    )
    return [Job.from_row(r) for r in rows]


_LIGHT = [c for c in JOBS.c if c.name not in ("spec", "labels")]


# The hot path's statements are built once (building one costs more than running it).
# ``with_for_update(skip_locked=True)`` renders nothing on SQLite.
_INSERT_JOB = insert(JOBS)
_INSERTS_OF_JOBS = DirectByKeys(_INSERT_JOB)
_ATTEMPTS = select(*[c for c in _LIGHT if c.name not in ("outputs", "artifacts")]).where(
    JOBS.c.execution_id == bindparam("b_execution")
)
_OUTPUTS = select(JOBS.c.outputs).where(JOBS.c.id == bindparam("b_id"))
_OWNED = (
    (JOBS.c.id == bindparam("b_id"))
    & (JOBS.c.lease_token == bindparam("b_token"))
    & JOBS.c.status.in_(IN_FLIGHT)
)
# The two columns of the agents table (``store.agents``, which imports this module) that a
# claim reads: a draining agent is leased nothing from the drain's commit on, checked in the
# claim's own statement (no statement more, no lock on the agent's row).
_AGENTS = table("agents", column("id"), column("draining"))
_PENDING = Direct(
    select(JOBS)
    .where(
        JOBS.c.status == JobStatus.PENDING.value,
        JOBS.c.pool.in_(bindparam("b_pools", expanding=True)),
        ~exists().where(_AGENTS.c.id == bindparam("b_agent"), _AGENTS.c.draining == true()),
    )
    .order_by(JOBS.c.created_at)
    .limit(bindparam("b_limit"))
    .with_for_update(skip_locked=True)
)
_JOB_COLUMNS = tuple(c.name for c in JOBS.c)
_DISPATCH = update(JOBS).where(
    JOBS.c.id == bindparam("b_id"), JOBS.c.status == JobStatus.PENDING.value
)
_LEASED = (
    "status",
    "agent_id",
    "lease_token",
    "lease_epoch",
    "dispatched_at",
    "lease_expires_at",
    "claim_id",
)
# A claim's lease of one job: dispatched, or (``start``) running at once.
_DISPATCHES = {
    started: Direct(_DISPATCH, column_keys=(*_LEASED, "started_at") if started else _LEASED)
    for started in (False, True)
}
_NOTICE = (JOBS.c.cancel_requested, JOBS.c.cancel_force, JOBS.c.cancel_as)
# A start of a job already running (a claim started it, or the start is sent again) keeps
# its ``started_at``; any start clears ``claim_id``: the agent has the claim's answer.
_START = (
    update(JOBS)
    .where(_OWNED)
    .values(
        status=JobStatus.RUNNING.value,
        started_at=case(
            (JOBS.c.status == JobStatus.RUNNING.value, JOBS.c.started_at),
            else_=bindparam("b_now"),
        ),
        claim_id=None,
    )
    .returning(*_NOTICE, JOBS.c.started_at)
)
_HEARTBEAT = update(JOBS).where(_OWNED).returning(*_NOTICE)
# Both return the job's last log seq too (the end does not change it): the report's own log
# lines follow it without reading the row again (see ``bump_seq``'s ``previous``).
_END = update(JOBS).where(_OWNED)
_FINISH = _END.returning(JOBS.c.status, JOBS.c.last_seq)
_TIMED_OUT = JOBS.c.cancel_as == JobStatus.TIMEOUT.value
# A job the server stopped for its timeout ends as a timeout: with the server's reason
# ("timed out after 2s") and retryable like a failure, whatever the agent called its stop.
_END_CANCELLED = _END.values(
    status=case((JOBS.c.cancel_as.is_not(None), JOBS.c.cancel_as), else_=JobStatus.CANCELLED.value),
    error=case((_TIMED_OUT, JOBS.c.error), else_=bindparam("b_error")),
    retryable=case((_TIMED_OUT, True), else_=bindparam("b_retryable")),
)
_FINISH_CANCELLED = _END_CANCELLED.returning(JOBS.c.status, JOBS.c.last_seq)
_SEQ = select(JOBS.c.last_seq, JOBS.c.lease_token).where(JOBS.c.id == bindparam("b_id"))
_SET_SEQ = update(JOBS).where(JOBS.c.id == bindparam("b_id"))
# PostgreSQL: the end that also records its report's last log seq, in the same statement,
# returning the seq stored before it. ``RETURNING`` gives the new row's values, so the old
# one comes from a self-join on the row, locked as the update locks it (FOR NO KEY UPDATE):
# a log batch committed meanwhile is waited for, and both then see its seq.
_BEFORE = (
    select(JOBS.c.id, JOBS.c.last_seq)
    .where(JOBS.c.id == bindparam("b_id"))
    .with_for_update(key_share=True)
    .subquery("before")
)
_WITH_SEQ = {"last_seq": func.greatest(JOBS.c.last_seq, bindparam("b_seq", type_=Integer))}
_FINISH_SEQ, _FINISH_CANCELLED_SEQ = (
    end.where(JOBS.c.id == _BEFORE.c.id)
    .values(_WITH_SEQ)
    .returning(JOBS.c.status, _BEFORE.c.last_seq)
    for end in (_END, _END_CANCELLED)
)
# What an end sets from its parameters (a cancelled end sets the rest itself).
_ENDED = ("ended_at", "outputs", "lease_expires_at", "artifacts", "exit_code")
_ENDS = {
    (cancelled, in_one): Direct(
        statement, column_keys=_ENDED if cancelled else (*_ENDED, "status", "error", "retryable")
    )
    for (cancelled, in_one), statement in {
        (False, False): _FINISH,
        (True, False): _FINISH_CANCELLED,
        (False, True): _FINISH_SEQ,
        (True, True): _FINISH_CANCELLED_SEQ,
    }.items()
}


def attempts_of_execution(session: Session, execution_id: str) -> list[Job]:
    """Every job of an execution without its spec, labels, outputs and artifacts: what a
    reconcile needs, read on every job's end, so wide executions stay cheap. ``outputs``
    is empty here; ``job_outputs`` reads them."""
    result = session.connection().execute(_ATTEMPTS, {"b_execution": execution_id})
    names = tuple(result.keys())  # plain tuples: see ``runs.list_step_states``
    return [_from_values(dict(zip(names, values, strict=True))) for values in result]


_STEP_COLUMNS = [c for c in ST.c if c.name not in ("outputs", "items")]
_ATTEMPT_COLUMNS = [c for c in _LIGHT if c.name not in ("outputs", "artifacts")]
_STEPS_AND_ATTEMPTS = Direct(
    select(
        *[c.label(f"s_{c.name}") for c in _STEP_COLUMNS],
        *[c.label(f"j_{c.name}") for c in _ATTEMPT_COLUMNS],
    )
    .select_from(
        ST.outerjoin(
            JOBS,
            (JOBS.c.execution_id == ST.c.execution_id)
            & (JOBS.c.step_id == ST.c.step_id)
            # A fanned-out step's completed items are read apart, by ``completed_items``.
            & ~(JOBS.c.item.is_not(None) & (JOBS.c.status == JobStatus.COMPLETED.value)),
        )
    )
    .where(
        ST.c.execution_id == bindparam("b_execution"),
        ST.c.step_id.in_(bindparam("b_steps", expanding=True)),
    )
)
_COMPLETED_ITEMS = select(
    JOBS.c.step_id, JOBS.c.attempt, JOBS.c.item, JOBS.c.created_at, JOBS.c.ended_at
).where(
    JOBS.c.execution_id == bindparam("b_execution"),
    JOBS.c.step_id.in_(bindparam("b_steps", expanding=True)),
    JOBS.c.item.is_not(None),
    JOBS.c.status == JobStatus.COMPLETED.value,
)


def completed_items(
    session: Session, execution_id: str, step_ids: Iterable[str]
) -> list[tuple[str, int, int, float, float | None]]:
    """The completed jobs of the named fanned-out steps, as (step, attempt, item, created_at,
    ended_at): all a reconcile needs of an item that is done, read as plain tuples, so a
    1,000-item step's job end does not decode 1,000 whole rows."""
    result = session.connection().execute(
        _COMPLETED_ITEMS, {"b_execution": execution_id, "b_steps": sorted(step_ids)}
    )
    return [(r[0], r[1], r[2], r[3], r[4]) for r in result]


def steps_and_attempts(
    session: Session, execution_id: str, step_ids: Iterable[str]
) -> tuple[list[Step], list[Job]]:
    """The named steps of an execution (as ``runs.list_step_states``) and every job of them
    (as ``attempts_of_execution``) except a fanned-out step's completed ones
    (``completed_items``), in one statement: what the reconcile of a job's end reads
    (the step, the steps that need it), however many steps the execution has."""
    rows = _STEPS_AND_ATTEMPTS.all(
        session, {"b_execution": execution_id, "b_steps": sorted(step_ids)}
    )
    split = len(_STEP_COLUMNS)
    step_names = tuple(c.name for c in _STEP_COLUMNS)
    job_names = tuple(c.name for c in _ATTEMPT_COLUMNS)
    sid_at, job_at = step_names.index("step_id"), split + job_names.index("id")
    steps: dict[str, Step] = {}
    jobs: list[Job] = []
    for values in rows:
        sid = values[sid_at]
        if sid not in steps:
            m = dict(zip(step_names, values[:split], strict=True))
            m["status"] = StepStatus(m["status"])
            m["retry_base"] = m["retry_base"] or 0
            m["user_skipped"] = bool(m["user_skipped"])
            steps[sid] = Step(**m)
        if values[job_at] is not None:  # None: the step has no job
            jobs.append(_from_values(dict(zip(job_names, values[split:], strict=True))))
    return list(steps.values()), jobs


def outputs_by_attempt(
    session: Session, execution_id: str, step_id: str
) -> dict[int, dict[str, Any]]:
    """Every run attempt's outputs of one step, by attempt number (a fanned-out step's end)."""
    rows = session.connection().execute(
        select(JOBS.c.attempt, JOBS.c.outputs).where(
            JOBS.c.execution_id == execution_id,
            JOBS.c.step_id == step_id,
            JOBS.c.purpose == "run",
        )
    )
    return {r.attempt: dict(r.outputs or {}) for r in rows}


def job_outputs(session: Session, job_id: str) -> dict[str, Any]:
    row = session.connection().execute(_OUTPUTS, {"b_id": job_id}).first()
    return dict(row.outputs or {}) if row is not None else {}


def get_job(session: Session, job_id: str) -> Job:
    row = session.connection().execute(select(JOBS).where(JOBS.c.id == job_id)).first()
    if row is None:
        raise NotFound(f"job {job_id!r} not found")
    return Job.from_row(row)


def in_flight_by_agent(session: Session) -> dict[str, int]:
    """How many jobs each agent holds now (dispatched or running), by agent id."""
    rows = session.connection().execute(
        select(JOBS.c.agent_id, func.count())
        .where(JOBS.c.status.in_(IN_FLIGHT), JOBS.c.agent_id.is_not(None))
        .group_by(JOBS.c.agent_id)
    )
    return {str(agent): int(count) for agent, count in rows}


def _labels_match(wanted: dict[str, Any], have: dict[str, str]) -> bool:
    return all(have.get(k) == str(v) for k, v in wanted.items())


def claim_jobs(
    session: Session,
    *,
    agent_id: str,
    pools: list[str],
    labels: dict[str, str],
    limit: int,
    lease_seconds: float,
    now: float,
    claim_id: str | None = None,
    start: bool = False,
) -> list[Job]:
    """Lease up to ``limit`` pending jobs of the given pools whose labels this agent has,
    marked with the agent's ``claim_id`` (see `claimed_again`); none while the agent is
    draining (as committed when the statement runs, whatever a caller noted of it before).
    With ``start``, those without a timeout are leased running, ``started_at`` the claim's
    ``now`` (the same as ``dispatched_at``: how `claimed_again` knows the claim started
    it). The start of a job with a timeout arms the timeout, which locks the execution first
    (lock order: execution, then job), and a claim holds job rows: it is left to
    `start_job`. Either way the job keeps ``claim_id`` until the agent's own start (see
    `claimed_again`)."""
    claimed: list[Job] = []
    found = _PENDING.all(
        session, {"b_pools": pools, "b_limit": max(limit * 4, 16), "b_agent": agent_id}
    )
    for row in found:
        if len(claimed) >= limit:
            break
        job = Job.from_mapping(dict(zip(_JOB_COLUMNS, row, strict=True)))
        if not _labels_match(job.labels, labels):
            continue
        token = secrets.token_hex(16)
        values = {
            "status": JobStatus.DISPATCHED.value,
            "agent_id": agent_id,
            "lease_token": token,
            "lease_epoch": job.lease_epoch + 1,
            "dispatched_at": now,
            "lease_expires_at": now + lease_seconds,
            "claim_id": claim_id,
        }
        status = JobStatus.DISPATCHED
        started = start and job.timeout is None
        if started:
            status = JobStatus.RUNNING
            values |= {"status": status.value, "started_at": now}
        if _DISPATCHES[started].run(session, {**values, "b_id": job.id}):
            claimed.append(Job(**{**job.__dict__, **values, "status": status}))
    return claimed


_CLAIMED_AGAIN = (
    select(JOBS)
    .where(
        JOBS.c.agent_id == bindparam("b_agent"),
        JOBS.c.claim_id == bindparam("b_claim"),
        JOBS.c.dispatched_at >= bindparam("b_since"),
        # Dispatched, or running because the claim started it: the agent's own start clears
        # ``claim_id`` (`start_job`), so a job the agent started is not among these.
        JOBS.c.status.in_(IN_FLIGHT),
    )
    .order_by(JOBS.c.created_at)
    .with_for_update()
)
_RENEW = update(JOBS).where(
    JOBS.c.id == bindparam("b_id"),
    JOBS.c.lease_token == bindparam("b_token"),
    JOBS.c.lease_epoch == bindparam("b_epoch"),
    JOBS.c.status.in_(IN_FLIGHT),
)


def claimed_again(
    session: Session, *, agent_id: str, claim_id: str, lease_seconds: float, now: float
) -> list[Job]:
    """The jobs an earlier try of the same claim (``agent_id`` and ``claim_id``) leased: the
    answer the agent did not get. Those are the jobs the agent has not started (its start
    clears ``claim_id``), and those the claim started itself (`claim_jobs` with ``start``):
    an agent sends a claim again only when it never got its answer, so it has run none of
    them. Each keeps its lease token and epoch,
    its status and ``started_at`` (no second start, no second attempt), and its lease is
    renewed (a compare-and-set on token and epoch: a job whose lease moved on meanwhile, or
    that ended, is not handed out). Only within two lease times of the first claim: a claim
    whose answer never gets through (it fails the same way each time) must not keep its
    jobs leased for ever; past that the lease runs out as for any lost agent."""
    again: list[Job] = []
    rows = session.connection().execute(
        _CLAIMED_AGAIN,
        {"b_agent": agent_id, "b_claim": claim_id, "b_since": now - 2 * lease_seconds},
    )
    for row in rows.all():
        job = Job.from_row(row)
        res = session.connection().execute(
            _RENEW,
            {
                "lease_expires_at": now + lease_seconds,
                "b_id": job.id,
                "b_token": job.lease_token,
                "b_epoch": job.lease_epoch,
            },
        )
        if res.rowcount:
            again.append(dataclasses.replace(job, lease_expires_at=now + lease_seconds))
    return again


def _refuse(session: Session, job_id: str, token: str) -> StaleReport:
    row = (
        session.connection()
        .execute(select(JOBS.c.status, JOBS.c.lease_token).where(JOBS.c.id == job_id))
        .first()
    )
    if row is None:
        return StaleReport(f"job {job_id!r} does not exist")
    if row.lease_token != token:
        return StaleReport(f"job {job_id!r}: lease token is not current (another agent owns it)")
    return StaleReport(f"job {job_id!r} already ended as {row.status}")


@dataclass(frozen=True)
class Lease:
    """What the server knows of a job an agent names by id, lease token and epoch."""

    id: str
    execution_id: str
    step_id: str
    attempt: int
    timeout: float | None
    lease_token: str
    agent_id: str | None = None  # the agent the job is leased to


_LEASES = select(
    JOBS.c.id,
    JOBS.c.execution_id,
    JOBS.c.step_id,
    JOBS.c.attempt,
    JOBS.c.timeout,
    JOBS.c.status,
    JOBS.c.lease_token,
    JOBS.c.lease_epoch,
    JOBS.c.agent_id,
).where(JOBS.c.id.in_(bindparam("b_ids", expanding=True)))


def leases(session: Session, refs: list[tuple[str, str, int]]) -> list[Lease | StaleReport]:
    """For each (job id, token, epoch) an agent sent, the job's lease when that is still its
    current one, or why not (the caller raises or reports the refusal)."""
    rows = {r.id: r for r in session.connection().execute(_LEASES, {"b_ids": [r[0] for r in refs]})}
    out: list[Lease | StaleReport] = []
    for job_id, token, epoch in refs:
        row = rows.get(job_id)
        if row is None:
            out.append(StaleReport(f"job {job_id!r} does not exist"))
        elif row.lease_token != token or row.lease_epoch != epoch:
            out.append(
                StaleReport(
                    f"job {job_id!r}: lease epoch {epoch} is not current (epoch "
                    f"{row.lease_epoch}); another claim owns it"
                )
            )
        elif row.status not in IN_FLIGHT:
            out.append(StaleReport(f"job {job_id!r} already ended as {row.status}"))
        else:
            out.append(
                Lease(
                    row.id,
                    row.execution_id,
                    row.step_id,
                    row.attempt,
                    row.timeout,
                    token,
                    row.agent_id,
                )
            )
    return out


def hand_back(session: Session, job_id: str, token: str) -> bool:
    """A claimed job goes back to the queue unrun (its agent is draining or never started it);
    the next claim gets a new token and epoch. False when the lease is not current."""
    res = session.connection().execute(
        update(JOBS)
        .where(_OWNED)
        .values(
            status=JobStatus.PENDING.value,
            agent_id=None,
            lease_token=None,
            lease_expires_at=None,
            dispatched_at=None,
            started_at=None,
            claim_id=None,
        ),
        {"b_id": job_id, "b_token": token},
    )
    return bool(res.rowcount)


class Started(NamedTuple):
    """What `start_job` did: the job's stop request, and whether this start began it."""

    notice: CancelNotice
    first: bool  # False: it was running already (started by its claim, or a start resent)


def start_job(
    session: Session, job_id: str, token: str, *, now: float, lease_seconds: float
) -> Started:
    """dispatched -> running: the agent has begun the work. Idempotent for the same lease:
    a job already running keeps its ``started_at`` (``first`` False, the lease renewed), so
    an agent that sends ``start`` for a job its claim started, or sends it twice, changes
    nothing else. A lease that is not the job's current one raises `StaleReport`."""
    row = (
        session.connection()
        .execute(
            _START,
            {
                "b_now": now,
                "lease_expires_at": now + lease_seconds,
                "b_id": job_id,
                "b_token": token,
            },
        )
        .first()
    )
    if row is None:
        raise _refuse(session, job_id, token)
    return Started(CancelNotice.from_row(row), row.started_at == now)


def heartbeat(
    session: Session, job_id: str, token: str, *, now: float, lease_seconds: float
) -> CancelNotice:
    """Extend the lease; the reply carries any cancel request for the job."""
    row = (
        session.connection()
        .execute(
            _HEARTBEAT,
            {"lease_expires_at": now + lease_seconds, "b_id": job_id, "b_token": token},
        )
        .first()
    )
    if row is None:
        raise _refuse(session, job_id, token)
    return CancelNotice.from_row(row)


class JobEnd(NamedTuple):
    """What `finish_job` wrote: the status the job ended with, and its last log seq."""

    status: JobStatus
    last_seq: int


def finish_job(
    session: Session,
    job_id: str,
    token: str,
    *,
    status: JobStatus,
    now: float,
    outputs: dict[str, Any] | None = None,
    error: str | None = None,
    retryable: bool = True,
    exit_code: int | None = None,
    artifacts: dict[str, str] | None = None,
    last_seq: int | None = None,
) -> JobEnd:
    """The agent's final report; a stale lease or an already ended job is refused.

    One statement: a job the server asked to stop as TIMEOUT ends so even when its agent
    reports it cancelled (with the server's reason, retryable). Returns the status the job
    ended with and its last stored log seq before this end (the row is locked by then: the
    report's own lines go in with ``logs.append(previous=..., recorded=True)``, no second
    read). ``last_seq``: the highest seq of the report's own log lines, recorded with the end
    (the stored seq becomes the higher of the two): in the same statement on PostgreSQL, in a
    second one on SQLite (which cannot return a value from before its update).
    """
    values: dict[str, Any] = {
        "ended_at": now,
        "outputs": outputs or {},
        "error": error,
        "retryable": retryable,
        "exit_code": exit_code,
        "lease_expires_at": None,
        "artifacts": artifacts or {},
        "b_id": job_id,
        "b_token": token,
    }
    connection = session.connection()
    in_one = last_seq is not None and connection.dialect.name == "postgresql"
    if in_one:
        values["b_seq"] = last_seq
    cancelled = status == JobStatus.CANCELLED
    if cancelled:
        values = {k: v for k, v in values.items() if k not in ("error", "retryable")}
        values |= {"b_error": error, "b_retryable": retryable}
    else:
        values["status"] = status.value
    row = _ENDS[cancelled, in_one].first(session, values)
    if row is None:
        raise _refuse(session, job_id, token)
    ended_as, previous = JobStatus(row[0]), int(row[1])
    if last_seq is not None and not in_one and last_seq > previous:
        connection.execute(_SET_SEQ, {"last_seq": last_seq, "b_id": job_id})
    return JobEnd(ended_as, previous)


def request_cancel(
    session: Session, job_id: str, *, as_status: JobStatus, force: bool, reason: str, now: float
) -> Job | None:
    """Ask a job to stop. A job never dispatched ends at once (returned); an in-flight one is
    flagged for its agent, which learns of it on its next heartbeat and reports the end."""
    res = session.connection().execute(
        update(JOBS)
        .where(JOBS.c.id == job_id, JOBS.c.status == JobStatus.PENDING.value)
        .values(status=as_status.value, ended_at=now, error=reason, retryable=False)
    )
    if res.rowcount:
        return get_job(session, job_id)
    session.connection().execute(
        update(JOBS)
        .where(JOBS.c.id == job_id, JOBS.c.status.in_(IN_FLIGHT))
        .values(cancel_requested=True, cancel_force=force, cancel_as=as_status.value, error=reason)
    )
    return None


def artifact_digest(session: Session, execution_id: str, step_id: str, name: str) -> str | None:
    """The named artifact of the step's latest completed attempt."""
    rows = (
        session.connection()
        .execute(
            select(JOBS.c.artifacts)
            .where(
                JOBS.c.execution_id == execution_id,
                JOBS.c.step_id == step_id,
                JOBS.c.status == JobStatus.COMPLETED.value,
                JOBS.c.purpose == "run",
            )
            .order_by(JOBS.c.attempt.desc())
            .limit(1)
        )
        .first()
    )
    if rows is None:
        return None
    value = (rows.artifacts or {}).get(name)
    return str(value) if value else None


def expired_leases(session: Session, now: float, limit: int = 100) -> list[tuple[str, str]]:
    rows = session.connection().execute(
        select(JOBS.c.id, JOBS.c.execution_id)
        .where(JOBS.c.status.in_(IN_FLIGHT), JOBS.c.lease_expires_at < now)
        .limit(limit)
    )
    return [(r.id, r.execution_id) for r in rows]


def resume_lapsed_leases(session: Session, *, lapsed_before: float, until: float) -> int:
    """Leases of jobs in flight that ran out before ``lapsed_before`` now run until ``until``
    (the token and epoch stay: no other claim happened meanwhile). For leases that ran out
    while no server watched them: their agents could not heartbeat either. Returns how many."""
    res = session.connection().execute(
        update(JOBS)
        .where(JOBS.c.status.in_(IN_FLIGHT), JOBS.c.lease_expires_at < lapsed_before)
        .values(lease_expires_at=until)
    )
    return int(res.rowcount or 0)


AGENT_LOST = "agent lost"


def agent_lost(status: JobStatus, error: str | None) -> bool:
    """Whether an attempt ended because its agent was lost (its stored outcome says so)."""
    return status == JobStatus.FAILED and (error or "").startswith(AGENT_LOST)


def fail_lost_job(session: Session, job_id: str, now: float) -> bool:
    """An expired lease: the attempt failed ("agent lost"); its retry policy decides.

    A job the server had already stopped for its timeout ends as ``timeout`` with the
    server's reason ("timed out after 2s") instead: the server enforces step timeouts itself,
    also when the agent is gone (killed, frozen, cut off) and can no longer report the stop.
    Either way the attempt is retryable, and a timeout does not count as an agent lost."""
    res = session.connection().execute(
        update(JOBS)
        .where(JOBS.c.id == job_id, JOBS.c.status.in_(IN_FLIGHT), JOBS.c.lease_expires_at < now)
        .values(
            status=case((_TIMED_OUT, JobStatus.TIMEOUT.value), else_=JobStatus.FAILED.value),
            ended_at=now,
            error=case(
                (_TIMED_OUT, JOBS.c.error),
                else_=f"{AGENT_LOST}: its lease expired without a report",
            ),
            retryable=True,
            lease_expires_at=None,
        )
    )
    return bool(res.rowcount)


def held_by_agent(session: Session, agent_id: str) -> list[tuple[str, str]]:
    """(job id, execution id) of every job still leased to ``agent_id``."""
    rows = session.connection().execute(
        select(JOBS.c.id, JOBS.c.execution_id).where(
            JOBS.c.status.in_(IN_FLIGHT), JOBS.c.agent_id == agent_id
        )
    )
    return [(r.id, r.execution_id) for r in rows]


def fail_abandoned_job(session: Session, job_id: str, agent_id: str, now: float) -> bool:
    """The agent holding the job restarted: the attempt failed ("agent lost") without waiting
    for its lease; its retry policy decides. False when the job is no longer that agent's."""
    res = session.connection().execute(
        update(JOBS)
        .where(JOBS.c.id == job_id, JOBS.c.status.in_(IN_FLIGHT), JOBS.c.agent_id == agent_id)
        .values(
            status=JobStatus.FAILED.value,
            ended_at=now,
            error=f"{AGENT_LOST}: its agent restarted while the attempt ran",
            retryable=True,
            lease_expires_at=None,
        )
    )
    return bool(res.rowcount)


def next_lease_expiry(session: Session) -> float | None:
    from sqlalchemy import func

    value = (
        session.connection()
        .execute(select(func.min(JOBS.c.lease_expires_at)).where(JOBS.c.status.in_(IN_FLIGHT)))
        .scalar()
    )
    return float(value) if value is not None else None


def bump_seq(
    session: Session, job_id: str, token: str, last_seq: int, *, previous: int | None = None
) -> int:
    """Record the highest log seq stored; returns the previous one (to detect gaps).

    ``previous``: the job's last seq as a statement of this same transaction read it from
    the row it locked after checking ``token`` (`finish_job`'s end); then it is not read
    again. Otherwise the row is read here, and a ``token`` that is not the job's lease
    raises `StaleReport`."""
    if previous is None:
        row = session.connection().execute(_SEQ, {"b_id": job_id}).first()
        if row is None or row.lease_token != token:
            raise _refuse(session, job_id, token)
        previous = int(row.last_seq)
    if last_seq > previous:
        session.connection().execute(_SET_SEQ, {"last_seq": last_seq, "b_id": job_id})
    return previous
