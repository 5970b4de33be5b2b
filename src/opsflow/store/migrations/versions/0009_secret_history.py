"""secret_versions (previous values, for masking) and job_secrets (what each job was handed)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 11:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "secret_versions",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("replaced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name=op.f("pk_secret_versions")),
    )
    op.create_table(
        "job_secrets",
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("execution_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name=op.f("fk_job_secrets_execution_id_executions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_secrets_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "name", name=op.f("pk_job_secrets")),
    )
    with op.batch_alter_table("job_secrets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_job_secrets_execution_id"), ["execution_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("job_secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_secrets_execution_id"))
    op.drop_table("job_secrets")
    op.drop_table("secret_versions")
