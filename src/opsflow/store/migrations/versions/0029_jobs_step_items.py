"""jobs: an index on (execution, step, status, item, attempt), so a job end of a fanned-out
step reads its completed items from the index alone, not from the wide job rows

Revision ID: 0029
Revises: 0028
Create Date: 2026-11-30 21:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_step_items",
            ["execution_id", "step_id", "status", "item", "attempt"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_step_items")
