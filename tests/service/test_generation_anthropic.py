"""The real anthropic SDK against the fake Messages API: success, retries and failures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from tests.service.conftest import SettingsFactory, anthropic_settings, wait_for
from tests.service.fake_anthropic import FakeMessagesAPI


@pytest.fixture
def ai_client(migrated: SettingsFactory, fake_api: FakeMessagesAPI) -> Iterator[TestClient]:
    """An app whose generator is the Anthropic SDK pointed at the fake API."""
    with TestClient(create_app(anthropic_settings(migrated, fake_api))) as test_client:
        yield test_client


def _submit(client: TestClient) -> dict:
    response = client.post(
        "/api/stories",
        json={
            "feature": "Export invoices as PDF",
            "context": "B2B billing",
            "persona": "accountant",
        },
    )
    assert response.status_code == 202
    return wait_for(client, response.json()["id"])


def test_good_reply_is_parsed_and_stored(ai_client: TestClient, fake_api: FakeMessagesAPI) -> None:
    done = _submit(ai_client)
    assert done["status"] == "done", done
    assert done["generator"] == "anthropic"
    assert done["model"] == "claude-test-model"
    assert [s["title"] for s in done["stories"]] == ["Export invoices", "Bulk export"]
    assert done["stories"][1]["priority"] == "medium"
    assert done["stories"][0]["text"] == (
        "As a accountant, I want to export invoices as PDF, so that I can send them to clients."
    )
    [call] = fake_api.calls
    headers = call["headers"]
    sent_key = headers.get("x-api-key") or headers["authorization"].removeprefix("Bearer ")
    assert sent_key == "sk-ant-test-key-0123456789"
    assert call["body"]["model"] == "claude-test-model"
    prompt = call["body"]["messages"][0]["content"]
    assert "Export invoices as PDF" in prompt and "B2B billing" in prompt and "accountant" in prompt


def test_fenced_json_is_accepted(ai_client: TestClient, fake_api: FakeMessagesAPI) -> None:
    fake_api.queue("fenced")
    assert _submit(ai_client)["status"] == "done"


@pytest.mark.parametrize("behaviour", ["malformed", "schema", "429", "529", "500", "timeout"])
def test_transient_failure_is_retried(
    ai_client: TestClient, fake_api: FakeMessagesAPI, behaviour: str
) -> None:
    fake_api.queue(behaviour)
    done = _submit(ai_client)
    assert done["status"] == "done", done
    assert len(fake_api.calls) == 2


@pytest.mark.parametrize(
    ("behaviour", "words"),
    [
        ("malformed", "malformed reply: reply is not valid JSON"),
        ("schema", "reply does not match the story schema"),
        ("529", "Messages API answered 529"),
        ("timeout", "timed out after 0.5s"),
    ],
)
def test_persistent_failure_marks_failed_without_stories(
    ai_client: TestClient, fake_api: FakeMessagesAPI, behaviour: str, words: str
) -> None:
    fake_api.default = behaviour
    done = _submit(ai_client)
    assert done["status"] == "failed"
    assert done["stories"] == []
    assert "after 3 attempts" in done["error"] and words in done["error"], done["error"]
    assert done["generator"] == "anthropic"
    assert len(fake_api.calls) == 3
    [item] = ai_client.get("/api/stories").json()["items"]
    assert item["story_count"] == 0


def test_client_error_is_not_retried(ai_client: TestClient, fake_api: FakeMessagesAPI) -> None:
    fake_api.default = "400"
    done = _submit(ai_client)
    assert done["status"] == "failed"
    assert done["error"] == "Messages API refused the request (400)"
    assert len(fake_api.calls) == 1


def test_ai_metrics_count_calls_and_failures(
    ai_client: TestClient, fake_api: FakeMessagesAPI
) -> None:
    fake_api.queue("429")
    _submit(ai_client)
    text = ai_client.get("/metrics").text
    assert 'ai_calls_total{model="claude-test-model",outcome="ok"} 1.0' in text
    assert 'ai_calls_total{model="claude-test-model",outcome="rate_limited"} 1.0' in text
    assert 'ai_failures_total{model="claude-test-model",reason="rate_limited"} 1.0' in text
    assert 'ai_call_duration_seconds_count{model="claude-test-model"} 2.0' in text
    assert 'stories_generated_total{generator="anthropic"} 2.0' in text
    assert "generations_in_flight 0.0" in text


def test_concurrency_is_bounded(migrated: SettingsFactory, fake_api: FakeMessagesAPI) -> None:
    fake_api.delay_seconds = 0.3
    settings = anthropic_settings(migrated, fake_api, max_concurrent_generations=2)
    peak = 0
    with TestClient(create_app(settings)) as client:
        ids = [
            client.post("/api/stories", json={"feature": f"Feature {i}"}).json()["id"]
            for i in range(6)
        ]
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        while any(client.get(f"/api/stories/{i}").json()["status"] != "done" for i in ids):
            peak = max(peak, runtime.worker.in_flight)
    assert 1 <= peak <= 2
