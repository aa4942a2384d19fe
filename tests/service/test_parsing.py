"""Strict parsing of the model's reply: all stories or none."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.generation import GenerationInput, MalformedReplyError, parse_stories, user_prompt
from tests.service.fake_anthropic import GOOD_REPLY


def test_good_reply_renders_the_story_sentence() -> None:
    stories = parse_stories(json.dumps(GOOD_REPLY))
    assert [s.priority for s in stories] == ["high", "medium"]
    assert stories[0].text == (
        "As a accountant, I want to export invoices as PDF, so that I can send them to clients."
    )


def test_text_from_the_model_is_ignored() -> None:
    reply = json.loads(json.dumps(GOOD_REPLY))
    reply["stories"][0]["text"] = "something else"
    assert parse_stories(json.dumps(reply))[0].text.startswith("As a accountant, I want")


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        ("not json", "not valid JSON"),
        ('{"stories": []}', "stories"),
        ('{"stories": [{"title": "x"}]}', "story schema"),
        ("Here you go: " + json.dumps(GOOD_REPLY), "not valid JSON"),
    ],
)
def test_malformed_replies_are_rejected_whole(reply: str, words: str) -> None:
    with pytest.raises(MalformedReplyError, match=words):
        parse_stories(reply)


@pytest.mark.parametrize(
    ("field", "value"),
    [("estimate", 4), ("priority", "urgent"), ("acceptance_criteria", []), ("as_a", "")],
)
def test_one_bad_story_rejects_the_whole_reply(field: str, value: object) -> None:
    reply = json.loads(json.dumps(GOOD_REPLY))
    reply["stories"][1][field] = value
    with pytest.raises(MalformedReplyError):
        parse_stories(json.dumps(reply))


@given(st.text(max_size=300))
def test_arbitrary_text_either_parses_completely_or_is_rejected(text: str) -> None:
    try:
        stories = parse_stories(text)
    except MalformedReplyError:
        return
    assert stories and all(story.text.startswith("As a ") for story in stories)


def test_prompt_carries_the_request() -> None:
    prompt = user_prompt(GenerationInput("Feature F", "Context C", "Persona P"))
    assert "Feature F" in prompt and "Context C" in prompt and "Persona P" in prompt
    assert "Product context" not in user_prompt(GenerationInput("Only a feature"))
