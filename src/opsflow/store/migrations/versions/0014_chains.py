"""executions.outputs, parent_execution_id, parent_step_id, chain; chain_fires (one row per
workflow trigger and upstream execution that started a run)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 15:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outputs", JSON, server_default="{}", nullable=False))
        batch_op.add_column(sa.Column("parent_execution_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("parent_step_id", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("chain", JSON, server_default="[]", nullable=False))
        batch_op.create_index(
            batch_op.f("ix_executions_parent_execution_id"), ["parent_execution_id"], unique=False
        )
    op.create_table(
        "chain_fires",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trigger_id", sa.Integer(), nullable=False),
        sa.Column("upstream_execution_id", sa.String(length=40), nullable=False),
        sa.Column("execution_id", sa.String(length=40), nullable=False),
        sa.Column("fired_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["trigger_id"], ["triggers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("trigger_id", "upstream_execution_id"),
    )


def downgrade() -> None:
    op.drop_table("chain_fires")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_executions_parent_execution_id"))
        batch_op.drop_column("chain")
        batch_op.drop_column("parent_step_id")
        batch_op.drop_column("parent_execution_id")
        batch_op.drop_column("outputs")
