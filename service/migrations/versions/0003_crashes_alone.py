"""Tell crashes a set caused apart from crashes it was caught in: whether the running claim of
a set runs alone in its process, and how many crashes hit the set while it did.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add claimed_alone and crashes_alone (with defaults: code of the previous release, which
    does not write them, keeps working during a rolling update)."""
    with op.batch_alter_table("story_sets") as batch:
        batch.add_column(
            sa.Column("claimed_alone", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("crashes_alone", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    """Drop the columns."""
    with op.batch_alter_table("story_sets") as batch:
        batch.drop_column("crashes_alone")
        batch.drop_column("claimed_alone")
