"""Pydantic models of the HTTP API and of the model's JSON reply."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

Status = Literal["queued", "running", "done", "failed"]
GeneratorName = Literal["anthropic", "offline"]
Priority = Literal["high", "medium", "low"]
Estimate = Literal[1, 2, 3, 5, 8, 13]

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


class StoryRequest(BaseModel):
    """The body of `POST /api/stories`."""

    model_config = ConfigDict(extra="forbid")

    feature: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=3, max_length=4000)
    ] = Field(description="What the feature should do, in plain words.")
    context: Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)] | None = None
    persona: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None

    @field_validator("feature", "context", "persona")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        # PostgreSQL text cannot hold NUL; refuse it here rather than fail on insert.
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("context", "persona")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


class AcceptanceCriterion(BaseModel):
    """One Given/When/Then scenario."""

    model_config = ConfigDict(extra="forbid")

    given: ShortText
    when: ShortText
    then: ShortText


class GeneratedStory(BaseModel):
    """A story as a generator must produce it; `text` is derived, never trusted from the model."""

    model_config = ConfigDict(extra="ignore")

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    as_a: ShortText
    i_want: ShortText
    so_that: ShortText
    acceptance_criteria: list[AcceptanceCriterion] = Field(min_length=1, max_length=20)
    priority: Priority
    estimate: Estimate

    @field_validator("priority", mode="before")
    @classmethod
    def _lower_priority(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


class GeneratedStories(BaseModel):
    """The whole reply a generator must produce."""

    model_config = ConfigDict(extra="ignore")

    stories: list[GeneratedStory] = Field(min_length=1, max_length=30)


class Story(GeneratedStory):
    """A stored user story with its rendered sentence."""

    model_config = ConfigDict(extra="forbid")

    text: str


def render_story(story: GeneratedStory) -> Story:
    """Add the canonical 'As a ..., I want ..., so that ...' sentence."""
    so_that = story.so_that.rstrip(". ")
    text = f"As a {story.as_a}, I want {story.i_want}, so that {so_that}."
    return Story(text=text, **story.model_dump())


class StorySetBase(BaseModel):
    """Fields shared by the full story set and its list entry."""

    id: str
    status: Status
    feature: str
    context: str | None
    persona: str | None
    generator: GeneratorName | None
    model: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime


class StorySet(StorySetBase):
    """A story set with its stories (`GET /api/stories/{id}`)."""

    stories: list[Story]


class StorySetSummary(StorySetBase):
    """A story set in a list: the stories are counted, not included."""

    story_count: int


class StorySetPage(BaseModel):
    """One page of `GET /api/stories`."""

    items: list[StorySetSummary]
    total: int
    limit: int
    offset: int


class HealthStatus(BaseModel):
    """Body of `/healthz`."""

    status: Literal["ok"]


class ReadyStatus(BaseModel):
    """Body of `/readyz`."""

    status: Literal["ready", "not ready"]
    database: str
    migration: str | None = None
    head: str | None = None
    generator: GeneratorName
    reason: str | None = None


class ErrorDetail(BaseModel):
    """FastAPI's error shape."""

    detail: str
