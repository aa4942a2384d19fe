"""Record who claimed a running story set: the process slot and its incarnation.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add claimed_by and claim_token (nullable: code of the previous release ignores them)."""
    with op.batch_alter_table("story_sets") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(200), nullable=True))
        batch.add_column(sa.Column("claim_token", sa.String(32), nullable=True))


def downgrade() -> None:
    """Drop the claim owner columns."""
    with op.batch_alter_table("story_sets") as batch:
        batch.drop_column("claim_token")
        batch.drop_column("claimed_by")
