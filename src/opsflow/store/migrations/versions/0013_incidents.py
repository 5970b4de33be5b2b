"""incidents (one row per alert an incident trigger received, from firing to resolved) and
incident_executions (the runs each one started)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 14:29:35.254320
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("trigger_id", sa.Integer(), nullable=False),
        sa.Column("workflow_id", sa.String(length=64), nullable=False),
        sa.Column("trigger_name", sa.String(length=64), nullable=False),
        sa.Column("incident_key", sa.String(length=120), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(length=64), nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("annotations", JSON, nullable=False),
        sa.Column("starts_at", sa.String(length=40), nullable=False),
        sa.Column("ends_at", sa.String(length=40), nullable=False),
        sa.Column("generator_url", sa.Text(), nullable=False),
        sa.Column("first_seen_at", sa.Float(), nullable=False),
        sa.Column("last_seen_at", sa.Float(), nullable=False),
        sa.Column("notifications", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["trigger_id"],
            ["triggers.id"],
            name=op.f("fk_incidents_trigger_id_triggers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_incidents_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint(
            "trigger_id", "incident_key", name=op.f("uq_incidents_trigger_id_incident_key")
        ),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incidents_last_seen_at"), ["last_seen_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_incidents_workflow_id"), ["workflow_id"], unique=False)

    op.create_table(
        "incident_executions",
        sa.Column("incident_id", sa.String(length=40), nullable=False),
        sa.Column("execution_id", sa.String(length=40), nullable=False),
        sa.Column("alert_status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_executions_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_id", "execution_id", name=op.f("pk_incident_executions")),
    )
    with op.batch_alter_table("incident_executions", schema=None) as batch_op:
        batch_op.create_index("ix_incident_executions_execution_id", ["execution_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("incident_executions", schema=None) as batch_op:
        batch_op.drop_index("ix_incident_executions_execution_id")

    op.drop_table("incident_executions")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incidents_workflow_id"))
        batch_op.drop_index(batch_op.f("ix_incidents_last_seen_at"))

    op.drop_table("incidents")
