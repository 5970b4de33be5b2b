"""metrics: covering indexes for the /metrics histogram windows (jobs ended, jobs dispatched)

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30 18:05:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES: list[tuple[str, list[str]]] = [
    ("ix_jobs_ended", ["ended_at", "started_at", "purpose", "type", "status"]),
    ("ix_jobs_dispatched", ["dispatched_at", "created_at"]),
]


def upgrade() -> None:
    for name, columns in INDEXES:
        op.create_index(name, "jobs", columns)


def downgrade() -> None:
    for name, _ in reversed(INDEXES):
        op.drop_index(name, table_name="jobs")
