"""trigger_deliveries (what arrived on /hooks/{key} and what came of it) and hook_rate_windows
(per-key rate counters shared by every replica), hook_delivery_keys (idempotency keys)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 14:15:27.024145
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hook_delivery_keys",
        sa.Column("trigger_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("execution_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trigger_id"],
            ["triggers.id"],
            name=op.f("fk_hook_delivery_keys_trigger_id_triggers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("trigger_id", "key", name=op.f("pk_hook_delivery_keys")),
    )
    with op.batch_alter_table("hook_delivery_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_hook_delivery_keys_created_at"), ["created_at"], unique=False
        )
    op.create_table(
        "hook_rate_windows",
        sa.Column("hook_key", sa.String(length=100), nullable=False),
        sa.Column("window", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("hook_key", "window", "kind", name=op.f("pk_hook_rate_windows")),
    )
    op.create_table(
        "trigger_deliveries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("workflow_id", sa.String(length=64), nullable=False),
        sa.Column("trigger_name", sa.String(length=100), nullable=False),
        sa.Column("trigger_type", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_address", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("delivery_key", sa.String(length=200), nullable=True),
        sa.Column("execution_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_trigger_deliveries_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger_deliveries")),
    )
    with op.batch_alter_table("trigger_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_trigger_deliveries_received_at", ["received_at"], unique=False)
        batch_op.create_index(
            "ix_trigger_deliveries_trigger", ["workflow_id", "trigger_name", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("trigger_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_trigger_deliveries_trigger")
        batch_op.drop_index("ix_trigger_deliveries_received_at")

    op.drop_table("trigger_deliveries")
    op.drop_table("hook_rate_windows")
    with op.batch_alter_table("hook_delivery_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hook_delivery_keys_created_at"))
    op.drop_table("hook_delivery_keys")
