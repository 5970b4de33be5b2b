"""triggers (one row per declared trigger, surviving re-publishing) and trigger_fires (one row
per fired schedule instant: the unique key that makes an instant fire once)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 14:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "triggers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workflow_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("hook_key", sa.String(length=64), nullable=True),
        sa.Column("secret_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("secret_name", sa.String(length=128), nullable=True),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", JSON, nullable=False),
        sa.Column("next_due_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_triggers_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triggers")),
        sa.UniqueConstraint("hook_key", name=op.f("uq_triggers_hook_key")),
        sa.UniqueConstraint("workflow_id", "name", name=op.f("uq_triggers_workflow_id_name")),
    )
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_triggers_next_due_at"), ["next_due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_triggers_workflow_id"), ["workflow_id"], unique=False)
    op.create_table(
        "trigger_fires",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trigger_id", sa.Integer(), nullable=False),
        sa.Column("instant", sa.Float(), nullable=False),
        sa.Column("execution_id", sa.String(length=40), nullable=False),
        sa.Column("fired_at", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["trigger_id"],
            ["triggers.id"],
            name=op.f("fk_trigger_fires_trigger_id_triggers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger_fires")),
        sa.UniqueConstraint(
            "trigger_id", "instant", name=op.f("uq_trigger_fires_trigger_id_instant")
        ),
    )


def downgrade() -> None:
    op.drop_table("trigger_fires")
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_triggers_workflow_id"))
        batch_op.drop_index(batch_op.f("ix_triggers_next_due_at"))
    op.drop_table("triggers")
