"""SQLAlchemy table definitions: one row per story set, its stories kept as JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Index, Integer, String, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base for the service's tables."""


class StorySetRecord(Base):
    """A generation request and, once done, the stories it produced."""

    __tablename__ = "story_sets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    feature: Mapped[str] = mapped_column(Text, nullable=False)
    context: Mapped[str | None] = mapped_column(Text)
    persona: Mapped[str | None] = mapped_column(String(200))
    generator: Mapped[str | None] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    stories: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    story_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The claiming process's slot (`<worker name>/<n>`) and incarnation, while `running`.
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claim_token: Mapped[str | None] = mapped_column(String(32))
    # Whether the running claim runs alone in its process (a set a crash interrupted before is
    # retried so), and how many crashes hit the set while it did: only those count against it.
    claimed_alone: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )
    crashes_alone: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default="0"
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (
        Index("ix_story_sets_created_at", "created_at"),
        Index("ix_story_sets_status_created_at", "status", "created_at"),
    )
