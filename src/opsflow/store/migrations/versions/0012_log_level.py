"""log_lines.level: how serious one of opsflow's own (system) lines is (info, warn, error)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 14:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no backfill: program output has no level, and a system line stored before this
    # revision is not guessed at from its words (readers take a missing level as unknown).
    op.add_column("log_lines", sa.Column("level", sa.String(length=5), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("log_lines") as batch:
        batch.drop_column("level")
