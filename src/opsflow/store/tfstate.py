"""Terraform state served by opsflow: every state version, and one lock row per state name.

Terraform's HTTP backend talks to these tables through ``opsflow.api.tfstate``. Versions are
append-only (a DELETE only clears the "current" pointer, so history survives a workspace
deletion). The lock is a row whose primary key is the state name: taking it is an INSERT, so
two replicas on one PostgreSQL agree on the holder without any home-made consensus.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, fields
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsflow.errors import Conflict, InvalidInput, NotFound, Unauthorized
from opsflow.spec.state_names import MAX_LENGTH as NAME_LENGTH
from opsflow.store.base import Base, JSONType
from opsflow.store.jobs import IN_FLIGHT, JOBS

_BigIntKey = BigInteger().with_variant(Integer(), "sqlite")


class TfStateRow(Base):
    """One state name: which of its versions is current (None after a DELETE)."""

    __tablename__ = "tfstates"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    current_version: Mapped[int | None] = mapped_column(Integer)
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class TfStateVersionRow(Base):
    """One state document as Terraform wrote it, with who wrote it."""

    __tablename__ = "tfstate_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(_BigIntKey, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(ForeignKey("tfstates.name", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    serial: Mapped[int] = mapped_column(BigInteger)
    lineage: Mapped[str] = mapped_column(String(64))
    terraform_version: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[float] = mapped_column(Float)
    execution_id: Mapped[str | None] = mapped_column(String(40))
    step_id: Mapped[str | None] = mapped_column(String(100))
    job_id: Mapped[str | None] = mapped_column(String(40))
    written_by: Mapped[str | None] = mapped_column(String(100))


class TfStateLockRow(Base):
    """The lock on one state name; the row exists exactly while someone holds it."""

    __tablename__ = "tfstate_locks"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    lock_id: Mapped[str] = mapped_column(String(100))
    info: Mapped[dict[str, Any]] = mapped_column(JSONType)
    holder: Mapped[str] = mapped_column(Text)
    execution_id: Mapped[str | None] = mapped_column(String(40))
    step_id: Mapped[str | None] = mapped_column(String(100))
    job_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[float] = mapped_column(Float)


TFSTATES: Table = cast(Table, TfStateRow.__table__)
TFSTATE_VERSIONS: Table = cast(Table, TfStateVersionRow.__table__)
TFSTATE_LOCKS: Table = cast(Table, TfStateLockRow.__table__)


class StateLocked(Conflict):
    """The state is locked by someone else."""

    status_code = 423

    def __init__(self, lock: StateLock, message: str | None = None) -> None:
        super().__init__(message or f"{lock.holder_text} (lock {lock.lock_id})")
        self.lock = lock


@dataclass(frozen=True)
class StateWriter:
    """Who reads, writes or locks a state: a job (while it runs) or a person.

    A job's credentials reach one state only, ``state_name``, the one the server named in the
    job's config (None: the job has no state of ours and may use none); a person may use any.
    """

    execution_id: str | None = None
    step_id: str | None = None
    job_id: str | None = None
    user: str | None = None
    state_name: str | None = None

    def describe(self) -> str:
        """``execution X, step Y`` or ``user NAME``: how the lock holder reads in messages."""
        if self.execution_id is not None:
            return f"execution {self.execution_id}, step {self.step_id}"
        return f"user {self.user}"

    def may_use(self, name: str) -> bool:
        """Whether this caller may read, write, lock or delete the state ``name``."""
        return self.job_id is None or self.state_name == name


@dataclass(frozen=True)
class StateLock:
    name: str
    lock_id: str
    info: dict[str, Any]
    holder: str
    execution_id: str | None
    step_id: str | None
    job_id: str | None
    created_at: float

    @property
    def holder_text(self) -> str:
        return f"state locked by {self.holder}"

    def terraform_info(self) -> dict[str, Any]:
        """The lock info Terraform sent, with ``Info`` naming the holder: Terraform prints it
        when it cannot take the lock, so the person sees which run holds it."""
        return {**self.info, "ID": self.lock_id, "Info": self.holder_text}

    @classmethod
    def from_row(cls, row: Any) -> StateLock:
        return cls(**dict(row._mapping))


@dataclass(frozen=True)
class StateVersion:
    """One stored state document's facts (its bytes are read separately)."""

    name: str
    version: int
    serial: int
    lineage: str
    terraform_version: str
    size: int
    created_at: float
    execution_id: str | None
    step_id: str | None
    job_id: str | None
    written_by: str | None

    @classmethod
    def from_row(cls, row: Any) -> StateVersion:
        return cls(**{f: getattr(row, f) for f in _VERSION_FIELDS})


_VERSION_FIELDS = [f.name for f in fields(StateVersion)]


@dataclass(frozen=True)
class StateSummary:
    """A state name with its current version (None after a DELETE) and its lock."""

    name: str
    current: StateVersion | None
    versions: int
    updated_at: float
    lock: StateLock | None


def _insert_ignoring_duplicate(session: Session, table: Table, values: dict[str, Any]) -> bool:
    """INSERT unless the primary key exists; True when inserted. Both backends do this
    atomically, so two replicas racing for one lock cannot both win."""
    dialect = session.get_bind().dialect.name
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(table).values(**values)
    # RETURNING, not rowcount: the drivers do not agree on a skipped row's rowcount.
    returning = stmt.on_conflict_do_nothing().returning(*table.primary_key.columns)
    return session.connection().execute(returning).first() is not None


def get_lock(session: Session, name: str) -> StateLock | None:
    row = (
        session.connection().execute(select(TFSTATE_LOCKS).where(TFSTATE_LOCKS.c.name == name))
    ).first()
    return StateLock.from_row(row) if row is not None else None


def _holder_gone(session: Session, lock: StateLock) -> bool:
    """A job's lock outlives the job only if its Terraform was killed; the job's credentials
    died with it, so it can never write or unlock again and its lock can be taken over."""
    if lock.job_id is None:
        return False
    status = (
        session.connection().execute(select(JOBS.c.status).where(JOBS.c.id == lock.job_id)).scalar()
    )
    return status not in IN_FLIGHT


def acquire_lock(
    session: Session,
    name: str,
    *,
    lock_id: str,
    info: dict[str, Any],
    writer: StateWriter,
    now: float,
) -> StateLock:
    """Take the lock on ``name``; raises ``StateLocked`` with the holder when it is held."""
    values: dict[str, Any] = {
        "name": name,
        "lock_id": lock_id,
        "info": info,
        "holder": writer.describe(),
        "execution_id": writer.execution_id,
        "step_id": writer.step_id,
        "job_id": writer.job_id,
        "created_at": now,
    }
    if _insert_ignoring_duplicate(session, TFSTATE_LOCKS, values):
        return StateLock(**values)
    held = get_lock(session, name)
    if held is None:  # released between our INSERT and SELECT: try once more
        if _insert_ignoring_duplicate(session, TFSTATE_LOCKS, values):
            return StateLock(**values)
        held = get_lock(session, name)
        assert held is not None
    if held.lock_id == lock_id:
        return held
    if _holder_gone(session, held):
        session.connection().execute(
            update(TFSTATE_LOCKS)
            .where(TFSTATE_LOCKS.c.name == name, TFSTATE_LOCKS.c.lock_id == held.lock_id)
            .values(**values)
        )
        return StateLock(**values)
    raise StateLocked(held)


def release_lock(session: Session, name: str, lock_id: str) -> None:
    """Release the lock if ``lock_id`` holds it; no lock is fine (releasing twice is harmless);
    another holder's lock raises ``Conflict``."""
    held = get_lock(session, name)
    if held is None:
        return
    if held.lock_id != lock_id:
        raise Conflict(
            f"lock {lock_id!r} does not hold {name!r}: {held.holder_text} (lock {held.lock_id})"
        )
    session.connection().execute(
        delete(TFSTATE_LOCKS).where(
            TFSTATE_LOCKS.c.name == name, TFSTATE_LOCKS.c.lock_id == lock_id
        )
    )


def force_unlock(session: Session, name: str) -> StateLock | None:
    """Remove whatever lock ``name`` has (an admin's last resort); returns the removed lock."""
    held = get_lock(session, name)
    if held is not None:
        session.connection().execute(delete(TFSTATE_LOCKS).where(TFSTATE_LOCKS.c.name == name))
    return held


def _check_lock(session: Session, name: str, lock_id: str | None) -> None:
    """A locked state may only be changed by its lock holder (Terraform sends ``?ID=``)."""
    held = get_lock(session, name)
    if held is None:
        return
    if lock_id is None:
        raise StateLocked(held, f"{held.holder_text}; send the lock ID to change it")
    if lock_id != held.lock_id:
        raise Conflict(f"lock ID {lock_id!r} does not match: {held.holder_text}")


def current_state(session: Session, name: str) -> bytes | None:
    """The current state document of ``name``; None when there is none (never written or
    deleted)."""
    data = (
        session.connection()
        .execute(
            select(TFSTATE_VERSIONS.c.data)
            .join(TFSTATES, TFSTATES.c.name == TFSTATE_VERSIONS.c.name)
            .where(
                TFSTATES.c.name == name,
                TFSTATE_VERSIONS.c.version == TFSTATES.c.current_version,
            )
        )
        .scalar()
    )
    return bytes(data) if data is not None else None


def write_state(
    session: Session,
    name: str,
    data: bytes,
    *,
    lock_id: str | None,
    writer: StateWriter,
    now: float,
) -> StateVersion:
    """Store ``data`` as the next version of ``name`` and make it current."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("the state is not JSON: Terraform state documents are JSON") from None
    if not isinstance(document, dict):
        raise InvalidInput("the state must be a JSON object")
    _check_lock(session, name, lock_id)
    _insert_ignoring_duplicate(
        session,
        TFSTATES,
        {
            "name": name,
            "current_version": None,
            "latest_version": 0,
            "created_at": now,
            "updated_at": now,
        },
    )
    stmt = select(TFSTATES.c.latest_version).where(TFSTATES.c.name == name)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()  # one writer numbers the next version
    number = int(session.connection().execute(stmt).scalar_one()) + 1
    version = StateVersion(
        name=name,
        version=number,
        serial=_int(document.get("serial")),
        lineage=str(document.get("lineage") or "")[:64],
        terraform_version=str(document.get("terraform_version") or "")[:32],
        size=len(data),
        created_at=now,
        execution_id=writer.execution_id,
        step_id=writer.step_id,
        job_id=writer.job_id,
        written_by=writer.user,
    )
    session.connection().execute(
        insert(TFSTATE_VERSIONS).values(
            **{f: getattr(version, f) for f in _VERSION_FIELDS}, data=data
        )
    )
    session.connection().execute(
        update(TFSTATES)
        .where(TFSTATES.c.name == name)
        .values(current_version=number, latest_version=number, updated_at=now)
    )
    return version


def delete_state(session: Session, name: str, *, lock_id: str | None, now: float) -> None:
    """Forget the current state of ``name``; its versions stay readable as history."""
    _check_lock(session, name, lock_id)
    session.connection().execute(
        update(TFSTATES).where(TFSTATES.c.name == name).values(current_version=None, updated_at=now)
    )


def list_states(session: Session, name: str | None = None) -> list[StateSummary]:
    """Every state name (or just ``name``), with its current version and lock, by name."""
    conn = session.connection()
    lock_query = select(TFSTATE_LOCKS)
    current_query = select(*[TFSTATE_VERSIONS.c[f] for f in _VERSION_FIELDS]).join(
        TFSTATES,
        (TFSTATES.c.name == TFSTATE_VERSIONS.c.name)
        & (TFSTATE_VERSIONS.c.version == TFSTATES.c.current_version),
    )
    state_query = select(TFSTATES)
    if name is not None:
        lock_query = lock_query.where(TFSTATE_LOCKS.c.name == name)
        current_query = current_query.where(TFSTATES.c.name == name)
        state_query = state_query.where(TFSTATES.c.name == name)
    locks = {row.name: StateLock.from_row(row) for row in conn.execute(lock_query)}
    current = {row.name: StateVersion.from_row(row) for row in conn.execute(current_query)}
    out = []
    for row in conn.execute(state_query):
        out.append(
            StateSummary(
                name=row.name,
                current=current.get(row.name),
                versions=row.latest_version,
                updated_at=row.updated_at,
                lock=locks.pop(row.name, None),
            )
        )
    for name, lock in sorted(locks.items()):  # locked before any state was written
        out.append(StateSummary(name, None, 0, lock.created_at, lock))
    return sorted(out, key=lambda s: s.name)


def get_summary(session: Session, name: str) -> StateSummary:
    """One state's summary; ``NotFound`` when the name was never written nor locked."""
    for summary in list_states(session, name):
        return summary
    raise NotFound(f"no Terraform state named {name!r}")


def list_versions(session: Session, name: str) -> list[StateVersion]:
    """Every version of ``name``, newest first; ``NotFound`` for an unknown name."""
    rows = (
        session.connection()
        .execute(
            select(*[TFSTATE_VERSIONS.c[f] for f in _VERSION_FIELDS])
            .where(TFSTATE_VERSIONS.c.name == name)
            .order_by(TFSTATE_VERSIONS.c.version.desc())
        )
        .all()
    )
    if not rows and get_lock(session, name) is None:
        raise NotFound(f"no Terraform state named {name!r}")
    return [StateVersion.from_row(r) for r in rows]


def get_version(session: Session, name: str, version: int) -> tuple[StateVersion, bytes]:
    """One version's facts and document; ``NotFound`` names what is missing."""
    row = (
        session.connection()
        .execute(
            select(TFSTATE_VERSIONS).where(
                TFSTATE_VERSIONS.c.name == name, TFSTATE_VERSIONS.c.version == version
            )
        )
        .first()
    )
    if row is None:
        raise NotFound(f"Terraform state {name!r} has no version {version}")
    return StateVersion.from_row(row), bytes(row.data)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def job_writer(session: Session, job_id: str, token: str) -> StateWriter | None:
    """The job that ``job_id``/``token`` (HTTP Basic from Terraform) stand for, while it runs.

    None when no job has that id (the caller then tries a user); ``Unauthorized`` saying why
    when the token is wrong or the job no longer holds its lease.
    """
    row = (
        session.connection()
        .execute(
            select(
                JOBS.c.execution_id,
                JOBS.c.step_id,
                JOBS.c.status,
                JOBS.c.lease_token,
                JOBS.c.spec,
            ).where(JOBS.c.id == job_id)
        )
        .first()
    )
    if row is None:
        return None
    if not row.lease_token or not hmac.compare_digest(row.lease_token, token):
        raise Unauthorized(f"job {job_id}: wrong lease token")
    if row.status not in IN_FLIGHT:
        raise Unauthorized(
            f"job {job_id} is {row.status}: its credentials ended with it "
            "(they are valid only while the job is dispatched or running)"
        )
    config = (row.spec or {}).get("config") if isinstance(row.spec, dict) else None
    name = config.get("state_name") if isinstance(config, dict) else None
    return StateWriter(
        execution_id=row.execution_id,
        step_id=row.step_id,
        job_id=job_id,
        state_name=name if isinstance(name, str) else None,
    )
