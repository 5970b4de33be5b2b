"""``chain_fires``: one row per (workflow trigger, upstream execution) that started a run.

The unique key is what makes a workflow trigger fire once per upstream execution: a run that
ends, is retried by hand and ends again does not start its followers a second time.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Float, ForeignKey, Integer, String, Table, UniqueConstraint, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsflow.store.base import Base


class ChainFireRow(Base):
    __tablename__ = "chain_fires"
    __table_args__ = (UniqueConstraint("trigger_id", "upstream_execution_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trigger_id: Mapped[int] = mapped_column(ForeignKey("triggers.id", ondelete="CASCADE"))
    upstream_execution_id: Mapped[str] = mapped_column(String(40))
    # No foreign key: the row is written first in the transaction that creates the execution.
    execution_id: Mapped[str] = mapped_column(String(40))
    fired_at: Mapped[float] = mapped_column(Float)


CHAIN_FIRES: Table = cast(Table, ChainFireRow.__table__)

_CLAIM = {
    # RETURNING says whether the row was inserted (a driver's rowcount of an insert that
    # did nothing is not to be trusted).
    name: ins.on_conflict_do_nothing(
        index_elements=["trigger_id", "upstream_execution_id"]
    ).returning(CHAIN_FIRES.c.id)
    for name, ins in (
        ("postgresql", pg_insert(CHAIN_FIRES)),
        ("sqlite", sqlite_insert(CHAIN_FIRES)),
    )
}


def claim(
    session: Session, trigger_id: int, upstream_execution_id: str, execution_id: str, now: float
) -> str | None:
    """Insert-or-nothing the fire of ``(trigger, upstream execution)``: None when this
    transaction now owns it, else the execution the first fire started."""
    result = session.connection().execute(
        _CLAIM[session.get_bind().dialect.name],
        {
            "trigger_id": trigger_id,
            "upstream_execution_id": upstream_execution_id,
            "execution_id": execution_id,
            "fired_at": now,
        },
    )
    if result.first() is not None:
        return None
    existing = session.scalar(
        select(ChainFireRow.execution_id).where(
            ChainFireRow.trigger_id == trigger_id,
            ChainFireRow.upstream_execution_id == upstream_execution_id,
        )
    )
    return str(existing) if existing is not None else None
