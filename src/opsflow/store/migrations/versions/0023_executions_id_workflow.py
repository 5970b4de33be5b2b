"""analytics: an execution's workflow by its id, so one workflow's jobs and gates are counted
from index entries alone

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-30 18:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_executions_id_workflow", "executions", ["id", "workflow_id"])


def downgrade() -> None:
    op.drop_index("ix_executions_id_workflow", table_name="executions")
