"""analytics: jobs and approval gates are read by their own time (handed out, opened)

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-30 18:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_jobs_agent_timing", table_name="jobs")
    op.drop_index("ix_approvals_waits", table_name="approvals")
    op.create_index(
        "ix_jobs_window",
        "jobs",
        ["created_at", "agent_id", "status", "started_at", "ended_at", "execution_id"],
    )
    op.create_index(
        "ix_approvals_window", "approvals", ["opened_at", "status", "decided_at", "execution_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_approvals_window", table_name="approvals")
    op.drop_index("ix_jobs_window", table_name="jobs")
    op.create_index(
        "ix_approvals_waits", "approvals", ["execution_id", "status", "opened_at", "decided_at"]
    )
    op.create_index(
        "ix_jobs_agent_timing",
        "jobs",
        ["execution_id", "agent_id", "status", "started_at", "ended_at"],
    )
