"""Terraform state served by opsflow: every state version, and one lock row per state name.

Terraform's HTTP backend talks to these tables through ``opsflow.api.tfstate``. Versions are
append-only (a DELETE only clears the "current" pointer, so history survives a workspace
deletion). The lock is a row whose primary key is the state name: taking it is an INSERT, so
two replicas on one PostgreSQL agree on the holder without any home-made consensus.
"""

from __future__ import annotations

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
)
from sqlalchemy.orm import Mapped, mapped_column

from opsflow.store.base import Base, JSONType

# State names may contain "/" (workflow/workspace/path); long enough for deep source paths.
NAME_LENGTH = 300
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
