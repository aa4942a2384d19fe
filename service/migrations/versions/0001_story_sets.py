"""Create the story_sets table.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create story_sets and its indexes."""
    op.create_table(
        "story_sets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("feature", sa.Text(), nullable=False),
        sa.Column("context", sa.Text(), nullable=True),
        sa.Column("persona", sa.String(200), nullable=True),
        sa.Column("generator", sa.String(16), nullable=True),
        sa.Column("model", sa.String(100), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("stories", sa.JSON(), nullable=True),
        sa.Column("story_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_story_sets_created_at", "story_sets", ["created_at"])
    op.create_index("ix_story_sets_status_created_at", "story_sets", ["status", "created_at"])


def downgrade() -> None:
    """Drop story_sets."""
    op.drop_index("ix_story_sets_status_created_at", table_name="story_sets")
    op.drop_index("ix_story_sets_created_at", table_name="story_sets")
    op.drop_table("story_sets")
