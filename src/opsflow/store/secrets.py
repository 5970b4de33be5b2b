"""The ``secrets`` table: one encrypted value per name, and queries that never return it.

Only `get_ciphertexts` and `previous_ciphertexts` hand out the stored bytes, and only to the
runtime's vault, which decrypts them for a job or for masking. Everything else returns
`SecretMeta`, which has no value field at all, so no API route can leak a value by serializing
the wrong object.

When a value is replaced, the old one moves to ``secret_versions`` (the last
`PREVIOUS_VALUES_KEPT` of them): no job is handed an old value, but masking covers them, since
a run may still print one (a Terraform diff of a value applied before the change:
``~ input = "closed" -> "***"``). Deleting a secret deletes its previous values too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text, delete, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsflow.errors import NotFound
from opsflow.store.base import Base, UTCDateTime, utcnow
from opsflow.store.integrity import conflict_on_duplicate

NAME_MAX_LENGTH = 128
# Previous values kept per secret for masking, newest first; older ones are dropped.
PREVIOUS_VALUES_KEPT = 20


class Secret(Base):
    __tablename__ = "secrets"

    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH), primary_key=True)
    # The SecretBox blob: format version, key id, nonce, AES-GCM ciphertext and tag.
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    description: Mapped[str] = mapped_column(Text, default="")
    # 1 when created, +1 on each replacement: tells the API "created" from "replaced".
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
    updated_by: Mapped[str] = mapped_column(String(100))


class SecretVersion(Base):
    """A value the secret had before it was replaced, kept (encrypted) only for masking."""

    __tablename__ = "secret_versions"

    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    replaced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobSecret(Base):
    """Which version of a secret a job was handed at its claim: the record that lets every
    later report of the execution be masked for it (a downstream step may print a value an
    upstream one received)."""

    __tablename__ = "job_secrets"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH), primary_key=True)
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("executions.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)


@dataclass(frozen=True)
class SecretMeta:
    """What anyone may know about a secret: everything but its value."""

    name: str
    description: str
    version: int
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str

    @property
    def created(self) -> bool:
        """Whether the last write created the secret (rather than replacing its value)."""
        return self.version == 1

    @classmethod
    def from_row(cls, row: Secret) -> SecretMeta:
        return cls(
            name=row.name,
            description=row.description,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            created_by=row.created_by,
            updated_by=row.updated_by,
        )


def list_secrets(session: Session) -> list[SecretMeta]:
    """Every secret's metadata, by name."""
    rows = session.scalars(select(Secret).order_by(Secret.name))
    return [SecretMeta.from_row(row) for row in rows]


def secret_names(session: Session) -> list[str]:
    """Every secret's name, sorted."""
    return list(session.scalars(select(Secret.name).order_by(Secret.name)))


def get_secret_meta(session: Session, name: str) -> SecretMeta:
    row = session.get(Secret, name)
    if row is None:
        raise NotFound(f"secret {name!r} not found")
    return SecretMeta.from_row(row)


def put_secret(
    session: Session, name: str, ciphertext: bytes, actor: str, description: str | None
) -> SecretMeta:
    """Create the secret or replace its value; ``description=None`` keeps the current one."""
    row = session.scalars(select(Secret).where(Secret.name == name).with_for_update()).first()
    now = utcnow()
    if row is None:
        row = Secret(
            name=name,
            ciphertext=ciphertext,
            description=description or "",
            version=1,
            created_at=now,
            updated_at=now,
            created_by=actor,
            updated_by=actor,
        )
        # Two first writes of one name at once: the loser gets a Conflict, not a driver error.
        with conflict_on_duplicate(f"secret {name!r} was created by another request; retry"):
            session.add(row)
            session.flush()
        return SecretMeta.from_row(row)
    session.add(
        SecretVersion(
            name=row.name, version=row.version, ciphertext=row.ciphertext, replaced_at=now
        )
    )
    session.execute(
        delete(SecretVersion).where(
            SecretVersion.name == name,
            SecretVersion.version <= row.version - PREVIOUS_VALUES_KEPT,
        )
    )
    row.ciphertext = ciphertext
    if description is not None:
        row.description = description
    row.version += 1
    row.updated_at = now
    row.updated_by = actor
    session.flush()
    return SecretMeta.from_row(row)


def delete_secret(session: Session, name: str) -> SecretMeta:
    """Remove the secret; returns what it was."""
    row = session.get(Secret, name)
    if row is None:
        raise NotFound(f"secret {name!r} not found")
    meta = SecretMeta.from_row(row)
    session.execute(delete(SecretVersion).where(SecretVersion.name == name))
    session.delete(row)
    session.flush()
    return meta


def get_ciphertexts(session: Session, names: Iterable[str]) -> dict[str, bytes]:
    """The stored blobs of those of ``names`` that exist (missing names are simply absent)."""
    return {name: blob for name, (_, blob) in get_current(session, names).items()}


def get_current(session: Session, names: Iterable[str]) -> dict[str, tuple[int, bytes]]:
    """Version and stored blob of those of ``names`` that exist."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    rows = session.execute(
        select(Secret.name, Secret.version, Secret.ciphertext).where(Secret.name.in_(wanted))
    )
    return {name: (int(version), bytes(blob)) for name, version, blob in rows}


def previous_ciphertexts(session: Session, names: Iterable[str]) -> list[tuple[str, bytes]]:
    """The kept previous blobs of ``names``: (name, blob) pairs, newest first per name."""
    wanted = sorted(set(names))
    if not wanted:
        return []
    rows = session.execute(
        select(SecretVersion.name, SecretVersion.ciphertext)
        .where(SecretVersion.name.in_(wanted))
        .order_by(SecretVersion.name, SecretVersion.version.desc())
    )
    return [(name, bytes(blob)) for name, blob in rows]


def record_handed(
    session: Session, execution_id: str, job_id: str, versions: Mapping[str, int]
) -> None:
    """Note that the job was handed these secrets (name -> version) at its claim."""
    if versions:
        session.execute(
            insert(JobSecret),
            [
                {"job_id": job_id, "name": name, "execution_id": execution_id, "version": v}
                for name, v in sorted(versions.items())
            ],
        )


def names_handed(session: Session, execution_ids: Iterable[str]) -> dict[str, set[str]]:
    """For each of ``execution_ids`` whose jobs were handed secrets: the secrets' names."""
    wanted = sorted(set(execution_ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(JobSecret.execution_id, JobSecret.name)
        .where(JobSecret.execution_id.in_(wanted))
        .distinct()
    )
    found: dict[str, set[str]] = {}
    for execution_id, name in rows:
        found.setdefault(execution_id, set()).add(name)
    return found
