"""Counts kept with each execution (steps active, approvals waiting, steps failed) and each
step (needs whose source has not ended), so a job's end is reconciled without reading every
step (see ``engine.advance``). NULL: not counted yet; the next whole reconcile counts them.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30 17:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("steps_active", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("approvals_waiting", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("steps_failed", sa.Integer(), nullable=True))
    with op.batch_alter_table("execution_steps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("needs_open", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("execution_steps", schema=None) as batch_op:
        batch_op.drop_column("needs_open")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_column("steps_failed")
        batch_op.drop_column("approvals_waiting")
        batch_op.drop_column("steps_active")
