"""analytics: covering indexes for the window aggregates (executions, steps, jobs, approvals)

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 17:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES: list[tuple[str, str, list[str]]] = [
    (
        "ix_executions_window",
        "executions",
        ["created_at", "test_run", "workflow_id", "status", "started_at", "ended_at", "id"],
    ),
    (
        "ix_executions_workflow_window",
        "executions",
        ["workflow_id", "created_at", "test_run", "status", "started_at", "ended_at", "id"],
    ),
    (
        "ix_execution_steps_timing",
        "execution_steps",
        ["execution_id", "step_id", "type", "status", "started_at", "ended_at"],
    ),
    (
        "ix_jobs_agent_timing",
        "jobs",
        ["execution_id", "agent_id", "status", "started_at", "ended_at"],
    ),
    ("ix_approvals_waits", "approvals", ["execution_id", "status", "opened_at", "decided_at"]),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
