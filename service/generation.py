"""What a story generator is, the prompt it is given, and strict parsing of its JSON reply."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

from pydantic import ValidationError

from service.schemas import GeneratedStories, Story, render_story


class GenerationError(Exception):
    """Generation gave up; `reason` is stored on the story set for the user to read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedReplyError(ValueError):
    """The model's reply was not the JSON document the prompt asked for."""


@dataclass(frozen=True)
class GenerationInput:
    """What a generator needs to write stories."""

    feature: str
    context: str | None = None
    persona: str | None = None


class StoryGenerator(Protocol):
    """Turns a feature description into user stories."""

    name: str
    model: str | None

    async def generate(self, request: GenerationInput) -> list[Story]:
        """Return parsed stories or raise GenerationError."""
        ...

    async def aclose(self) -> None:
        """Release network clients."""
        ...


SYSTEM_PROMPT = """You are a senior product owner. You write user stories for a feature.
Reply with one JSON object and nothing else, of this exact shape:
{"stories": [{"title": str, "as_a": str, "i_want": str, "so_that": str,
  "acceptance_criteria": [{"given": str, "when": str, "then": str}],
  "priority": "high" | "medium" | "low", "estimate": 1 | 2 | 3 | 5 | 8 | 13}]}
Write 3 to 8 stories. Each story has 1 to 5 acceptance criteria in Given/When/Then form.
"as_a" is a role without the article ("registered user"), "i_want" and "so_that" are phrases
without a leading "I want"/"so that". The estimate is in story points."""


def user_prompt(request: GenerationInput) -> str:
    """The user message: feature, optional product context and persona."""
    parts = [f"Feature:\n{request.feature}"]
    if request.context:
        parts.append(f"Product context:\n{request.context}")
    if request.persona:
        parts.append(f"Primary persona: {request.persona}")
    return "\n\n".join(parts)


def _json_object_text(reply: str) -> str:
    """Strip a Markdown fence if the model added one; the rest must be one JSON object."""
    text = reply.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text.strip()


def parse_stories(reply: str) -> list[Story]:
    """Validate the whole reply or reject it: nothing half-parsed gets through."""
    try:
        data = json.loads(_json_object_text(reply))
    except json.JSONDecodeError as exc:
        raise MalformedReplyError(f"reply is not valid JSON ({exc.msg} at char {exc.pos})") from exc
    try:
        parsed = GeneratedStories.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "reply"
        raise MalformedReplyError(
            f"reply does not match the story schema ({exc.error_count()} errors; "
            f"{where}: {first['msg']})"
        ) from exc
    return [render_story(story) for story in parsed.stories]
