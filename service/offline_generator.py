"""A deterministic generator that needs no network, so the service runs anywhere."""

from __future__ import annotations

import hashlib
import re

from service.generation import GenerationInput
from service.schemas import (
    AcceptanceCriterion,
    Estimate,
    GeneratedStory,
    Priority,
    Story,
    render_story,
)

_ESTIMATES: tuple[Estimate, ...] = (1, 2, 3, 5, 8, 13)
_PRIORITIES: tuple[Priority, ...] = ("high", "medium", "low")
_ASPECTS = (
    ("Core flow", "to {feature}", "I get the main value of the feature without a workaround"),
    ("Validation", "clear feedback when my input for {short} is invalid", "I can fix it myself"),
    ("Permissions", "only authorised people to use {short}", "our data stays safe"),
    ("History", "to see what happened with {short} earlier", "I can trust and audit the result"),
    ("Notifications", "to be told when {short} needs my attention", "I do not miss anything"),
    ("Accessibility", "to use {short} with a keyboard and a screen reader", "nobody is left out"),
)


def _sentence(text: str, limit: int) -> str:
    """First sentence of the text, lower-cased at the start, trimmed to `limit` characters."""
    first = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0].rstrip(".!? ")
    first = re.sub(r"\s+", " ", first)
    if len(first) > limit:
        first = first[:limit].rsplit(" ", 1)[0] or first[:limit]
    return first[:1].lower() + first[1:] if first else "use the feature"


class OfflineGenerator:
    """Builds plausible stories from templates, seeded by the request so output is repeatable."""

    name = "offline"
    model: str | None = None

    async def generate(self, request: GenerationInput) -> list[Story]:
        """Return 3 to 5 stories derived only from the request text."""
        seed = hashlib.sha256(
            "\x1f".join([request.feature, request.context or "", request.persona or ""]).encode()
        ).digest()
        persona = _sentence(request.persona or "user", 150)
        feature = _sentence(request.feature, 300)
        short = _sentence(request.feature, 60)
        count = 3 + seed[0] % 3
        stories = []
        for index, (title, want, why) in enumerate(_ASPECTS[:count]):
            story = GeneratedStory(
                title=f"{title}: {short}"[:200],
                as_a=persona,
                i_want=want.format(feature=feature, short=short),
                so_that=why,
                acceptance_criteria=[
                    AcceptanceCriterion(
                        given=f"I am a {persona} on the {short} screen",
                        when="I complete the step with valid input"
                        if index != 1
                        else "I submit incomplete input",
                        then="the result is saved and shown to me"
                        if index != 1
                        else "I see which field to correct and nothing is saved",
                    ),
                    AcceptanceCriterion(
                        given="the service is unavailable",
                        when="I try the same step",
                        then="I see a clear message and can retry later",
                    ),
                ],
                priority=_PRIORITIES[0 if index == 0 else seed[index] % 3],
                estimate=_ESTIMATES[seed[index + 8] % 5],
            )
            stories.append(render_story(story))
        return stories

    async def aclose(self) -> None:
        """Nothing to release."""
