"""fan-out: a fanned-out step's recorded list, its item count and people's marks on items
(execution_steps.items, item_count, item_marks), and the item each job runs (jobs.item)

Revision ID: 0026
Revises: 0025
Create Date: 2026-11-30 21:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("execution_steps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("items", _JSON, nullable=True))
        batch_op.add_column(sa.Column("item_count", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("item_marks", _JSON, nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("item", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("item")
    with op.batch_alter_table("execution_steps", schema=None) as batch_op:
        batch_op.drop_column("item_marks")
        batch_op.drop_column("item_count")
        batch_op.drop_column("items")
