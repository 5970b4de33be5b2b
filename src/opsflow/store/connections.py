"""The ``connections`` table: named, typed credentials, their values in one encrypted blob.

A row holds the type, which fields are set (names only, so the API can say "private_key is
set" without decrypting anything), the `SecretBox` blob of the values as a JSON object, an
enabled flag and the outcome of its last test. Only `get_ciphertexts` hands out the blob,
and only to the vault (`opsflow.auth.connections.ConnectionVault`); everything else returns
`ConnectionMeta`, which has no value field at all.

``job_connections`` records which connection each job was handed at its claim, so any replica
masks what that execution's later jobs send back (as ``job_secrets`` does for secrets).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    LargeBinary,
    String,
    Text,
    insert,
    literal,
    select,
    union,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsflow.errors import NotFound
from opsflow.store.base import Base, JSONType, UTCDateTime, utcnow
from opsflow.store.integrity import conflict_on_duplicate
from opsflow.store.secrets import JobSecret

NAME_MAX_LENGTH = 100


class ConnectionRow(Base):
    __tablename__ = "connections"

    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH), primary_key=True)
    type: Mapped[str] = mapped_column(String(20))
    # The names of the fields that are set, sorted; never their values.
    fields: Mapped[list[str]] = mapped_column(JSONType)
    # What the connection reaches, not secret: a notify connection's Apprise URL schemes.
    services: Mapped[list[str]] = mapped_column(JSONType, server_default="[]")
    # The SecretBox blob of the values (a JSON object of strings).
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
    updated_by: Mapped[str] = mapped_column(String(100))
    last_tested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_test_ok: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    last_test_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class JobConnection(Base):
    """Which connection a job was handed at its claim (for masking its execution's reports)."""

    __tablename__ = "job_connections"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH), primary_key=True)
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("executions.id", ondelete="CASCADE"), index=True
    )


@dataclass(frozen=True)
class ConnectionMeta:
    """What anyone allowed to see a connection may know: everything but its values."""

    name: str
    type: str
    fields: tuple[str, ...]
    services: tuple[str, ...]
    enabled: bool
    description: str
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str
    last_tested_at: datetime | None
    last_test_ok: bool | None
    last_test_error: str | None

    @classmethod
    def from_row(cls, row: ConnectionRow) -> ConnectionMeta:
        return cls(
            name=row.name,
            type=row.type,
            fields=tuple(row.fields or ()),
            services=tuple(row.services or ()),
            enabled=bool(row.enabled),
            description=row.description,
            created_at=row.created_at,
            updated_at=row.updated_at,
            created_by=row.created_by,
            updated_by=row.updated_by,
            last_tested_at=row.last_tested_at,
            last_test_ok=row.last_test_ok,
            last_test_error=row.last_test_error,
        )


def _not_found(name: str) -> NotFound:
    return NotFound(f"connection {name!r} not found")


def list_connections(session: Session) -> list[ConnectionMeta]:
    """Every connection's metadata, by name."""
    rows = session.scalars(select(ConnectionRow).order_by(ConnectionRow.name))
    return [ConnectionMeta.from_row(row) for row in rows]


def find(session: Session, name: str) -> ConnectionMeta | None:
    """The connection called ``name``, or None."""
    row = session.get(ConnectionRow, name)
    return None if row is None else ConnectionMeta.from_row(row)


def get_meta(session: Session, name: str) -> ConnectionMeta:
    """The connection called ``name``; `NotFound` when there is none."""
    found = find(session, name)
    if found is None:
        raise _not_found(name)
    return found


def put(
    session: Session,
    name: str,
    *,
    type_: str,
    fields: Iterable[str],
    services: Iterable[str] = (),
    ciphertext: bytes,
    actor: str,
    description: str | None,
    enabled: bool | None,
) -> tuple[ConnectionMeta, bool]:
    """Create the connection or replace its type and values; ``description``/``enabled``
    None keep the current ones. Returns the metadata and whether it was created. A replaced
    connection's last test result is cleared: it said nothing about the new values."""
    row = session.scalars(
        select(ConnectionRow).where(ConnectionRow.name == name).with_for_update()
    ).first()
    now = utcnow()
    if row is None:
        row = ConnectionRow(
            name=name,
            type=type_,
            fields=sorted(fields),
            services=list(services),
            ciphertext=ciphertext,
            enabled=True if enabled is None else enabled,
            description=description or "",
            created_at=now,
            updated_at=now,
            created_by=actor,
            updated_by=actor,
        )
        with conflict_on_duplicate(f"connection {name!r} was created by another request; retry"):
            session.add(row)
            session.flush()
        return ConnectionMeta.from_row(row), True
    row.type = type_
    row.fields = sorted(fields)
    row.services = list(services)
    row.ciphertext = ciphertext
    if description is not None:
        row.description = description
    if enabled is not None:
        row.enabled = enabled
    row.updated_at = now
    row.updated_by = actor
    row.last_tested_at = row.last_test_ok = row.last_test_error = None
    session.flush()
    return ConnectionMeta.from_row(row), False


def update(
    session: Session,
    name: str,
    *,
    actor: str,
    enabled: bool | None = None,
    description: str | None = None,
) -> ConnectionMeta:
    """Change the enabled flag and/or the description (None keeps each)."""
    row = session.scalars(
        select(ConnectionRow).where(ConnectionRow.name == name).with_for_update()
    ).first()
    if row is None:
        raise _not_found(name)
    if enabled is not None:
        row.enabled = enabled
    if description is not None:
        row.description = description
    row.updated_at = utcnow()
    row.updated_by = actor
    session.flush()
    return ConnectionMeta.from_row(row)


def record_test(
    session: Session, name: str, *, ok: bool, error: str | None, at: datetime
) -> ConnectionMeta:
    """Note the outcome of a test of the connection."""
    row = session.get(ConnectionRow, name)
    if row is None:
        raise _not_found(name)
    row.last_tested_at = at
    row.last_test_ok = ok
    row.last_test_error = error
    session.flush()
    return ConnectionMeta.from_row(row)


def remove(session: Session, name: str) -> ConnectionMeta:
    """Delete the connection; returns what it was."""
    row = session.get(ConnectionRow, name)
    if row is None:
        raise _not_found(name)
    meta = ConnectionMeta.from_row(row)
    session.delete(row)
    session.flush()
    return meta


def get_ciphertexts(session: Session, names: Iterable[str]) -> dict[str, tuple[str, bytes]]:
    """Type and blob of those of ``names`` that exist (missing names are simply absent)."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    rows = session.execute(
        select(ConnectionRow.name, ConnectionRow.type, ConnectionRow.ciphertext).where(
            ConnectionRow.name.in_(wanted)
        )
    )
    return {name: (kind, bytes(blob)) for name, kind, blob in rows}


def all_names(session: Session) -> list[str]:
    """Every connection's name, sorted."""
    return list(session.scalars(select(ConnectionRow.name).order_by(ConnectionRow.name)))


def record_handed(session: Session, execution_id: str, job_id: str, name: str) -> None:
    """Note that the job was handed connection ``name`` at its claim."""
    session.execute(
        insert(JobConnection), [{"job_id": job_id, "name": name, "execution_id": execution_id}]
    )


def names_handed(session: Session, execution_ids: Iterable[str]) -> dict[str, set[str]]:
    """For each of ``execution_ids`` whose jobs were handed connections: their names."""
    wanted = sorted(set(execution_ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(JobConnection.execution_id, JobConnection.name)
        .where(JobConnection.execution_id.in_(wanted))
        .distinct()
    )
    found: dict[str, set[str]] = {}
    for execution_id, name in rows:
        found.setdefault(execution_id, set()).add(name)
    return found


def secrets_and_connections_handed(
    session: Session, execution_ids: Iterable[str]
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """`secrets.names_handed` and `names_handed` of the same executions in one statement
    (a claim reads both: one round trip, not two)."""
    wanted = sorted(set(execution_ids))
    secrets: dict[str, set[str]] = {}
    connections: dict[str, set[str]] = {}
    if not wanted:
        return secrets, connections
    rows = session.execute(
        union(
            select(literal("s"), JobSecret.execution_id, JobSecret.name).where(
                JobSecret.execution_id.in_(wanted)
            ),
            select(literal("c"), JobConnection.execution_id, JobConnection.name).where(
                JobConnection.execution_id.in_(wanted)
            ),
        )
    )
    for kind, execution_id, name in rows:
        (secrets if kind == "s" else connections).setdefault(execution_id, set()).add(name)
    return secrets, connections
