"""Pydantic models of the HTTP API and of the model's JSON reply."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from annotated_types import Interval
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError

Status = Literal["queued", "running", "done", "failed"]
GeneratorName = Literal["anthropic", "offline"]
Priority = Literal["high", "medium", "low"]
Estimate = Literal[1, 2, 3, 5, 8, 13]

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]

# What the request fields may hold, stated so that the OpenAPI document says exactly what is
# validated: lengths count the text as sent, NUL is refused (PostgreSQL text cannot hold it),
# and the ASCII whitespace stripped afterwards is spelled out rather than left to a regex
# engine's idea of `\s`.
WHITESPACE = "\t\n\x0b\x0c\r "
_WS = r"\t\n\x0b\x0c\r "
NO_NUL = r"^[^\x00]*$"
# At least three characters between the first and the last that are not whitespace.
FEATURE_PATTERN = rf"^[{_WS}]*[^{_WS}\x00][^\x00]+[^{_WS}\x00][{_WS}]*$"


def _strip(value: str) -> str:
    return value.strip(WHITESPACE)


def _strip_to_none(value: str) -> str | None:
    return value.strip(WHITESPACE) or None


Feature = Annotated[
    str,
    StringConstraints(min_length=3, max_length=4000, pattern=FEATURE_PATTERN),
    AfterValidator(_strip),
]
Context = Annotated[
    str, StringConstraints(max_length=4000, pattern=NO_NUL), AfterValidator(_strip_to_none)
]
Persona = Annotated[
    str, StringConstraints(max_length=200, pattern=NO_NUL), AfterValidator(_strip_to_none)
]


def _decimal_digits(value: object) -> object:
    """Query integers as ASCII decimal digits only: `5`, never `5.0`, `+5`, ` 5`, `1_0` or
    other scripts' digits, all of which the lax integer parsing would take."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise PydanticCustomError(
            "int_parsing", "Input should be a whole number in decimal digits, like 20"
        )
    return value


# Integer query parameters, bounds first so that the document shows them as minimum and
# maximum; OpenAPI cannot say "digits only" of an integer, the description does.
PageLimit = Annotated[int, Interval(ge=1, le=100), BeforeValidator(_decimal_digits)]
PageOffset = Annotated[int, Interval(ge=0, le=1_000_000), BeforeValidator(_decimal_digits)]


class StoryRequest(BaseModel):
    """The body of `POST /api/stories`."""

    model_config = ConfigDict(extra="forbid")

    feature: Feature = Field(
        description="What the feature should do, in plain words: 3 to 4000 characters without "
        "NUL, at least 3 of them left after trimming spaces, tabs and line breaks."
    )
    context: Context | None = Field(
        default=None, description="Product context; blank is the same as none."
    )
    persona: Persona | None = Field(
        default=None, description="The main user of the feature; blank is the same as none."
    )


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
