"""Auth, body and field limits, rate limits, CORS and secret hygiene."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from service.security import RateLimiter
from tests.service.conftest import SettingsFactory

KEY = "k3y-for-tests-0123456789abcdef"


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """Security behaviour does not depend on the database: SQLite only here."""
    return sqlite_url


def test_write_endpoints_require_a_key_when_keys_are_configured(
    migrated: SettingsFactory,
) -> None:
    with TestClient(create_app(migrated(api_keys=KEY))) as client:
        missing = client.post("/api/stories", json={"feature": "Needs a key"})
        assert missing.status_code == 401
        assert missing.json() == {"detail": "missing bearer API key"}
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = client.post(
            "/api/stories", json={"feature": "Needs a key"}, headers={"Authorization": "Bearer no"}
        )
        assert wrong.status_code == 401 and wrong.json() == {"detail": "invalid API key"}
        ok = client.post(
            "/api/stories",
            json={"feature": "Needs a key"},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert ok.status_code == 202
        story_set_id = ok.json()["id"]
        assert client.get(f"/api/stories/{story_set_id}").status_code == 200
        assert client.delete(f"/api/stories/{story_set_id}").status_code == 401
        deleted = client.delete(
            f"/api/stories/{story_set_id}", headers={"Authorization": f"Bearer {KEY}"}
        )
        assert deleted.status_code == 204


def test_keys_may_be_configured_as_sha256_digests(migrated: SettingsFactory) -> None:
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    settings = migrated(api_keys=f"sha256:{digest}")
    assert settings.api_keys == [digest]
    with TestClient(create_app(settings)) as client:
        ok = client.post(
            "/api/stories", json={"feature": "Hashed"}, headers={"Authorization": f"Bearer {KEY}"}
        )
        assert ok.status_code == 202


def test_plain_keys_are_hashed_at_load(migrated: SettingsFactory) -> None:
    settings = migrated(api_keys=f"{KEY},other-key-0123456789")
    assert KEY not in settings.model_dump_json()
    assert settings.api_keys[0] == hashlib.sha256(KEY.encode()).hexdigest()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"feature": "ab"}, "feature"),
        ({"feature": "   abc   "[:5]}, "feature"),
        ({"feature": "x" * 4001}, "feature"),
        ({"feature": "valid feature", "context": "c" * 4001}, "context"),
        ({"feature": "valid feature", "persona": "p" * 201}, "persona"),
        ({"feature": "valid feature", "unknown": 1}, "unknown"),
        ({}, "feature"),
        ({"feature": 42}, "feature"),
    ],
)
def test_field_limits_are_422_naming_the_field(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    response = client.post("/api/stories", json=body)
    assert response.status_code == 422, response.text
    assert any(error["loc"][-1] == field for error in response.json()["detail"])


def test_field_at_the_limit_is_accepted(client: TestClient) -> None:
    body = {"feature": "f" * 4000, "context": "c" * 4000, "persona": "p" * 200}
    assert client.post("/api/stories", json=body).status_code == 202


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    response = client.post(
        "/api/stories",
        content=json.dumps({"feature": "x" * 70_000}),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json() == {"detail": "request body is larger than the limit of 65536 bytes"}


def test_streamed_body_over_the_limit_is_413(client: TestClient) -> None:
    def chunks():  # no Content-Length: the limit is enforced while reading
        yield b'{"feature": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}'

    response = client.post(
        "/api/stories", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_write_rate_limit_is_429_with_retry_after(migrated: SettingsFactory) -> None:
    with TestClient(create_app(migrated(rate_limit_per_minute=3))) as client:
        codes = [
            client.post("/api/stories", json={"feature": "Spam"}).status_code for _ in range(4)
        ]
        assert codes == [202, 202, 202, 429]
        limited = client.post("/api/stories", json={"feature": "Spam"})
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert "rate limit of 3 requests per minute" in limited.json()["detail"]
        assert client.get("/api/stories").status_code == 200
        metrics = client.get("/metrics").text
        assert 'rate_limited_total{scope="write"} 2.0' in metrics


def test_rate_limit_is_per_client(migrated: SettingsFactory) -> None:
    settings = migrated(rate_limit_per_minute=1, api_keys=f"{KEY},second-key-0123456789")
    with TestClient(create_app(settings)) as client:

        def post(key: str) -> int:
            headers = {"Authorization": f"Bearer {key}"}
            return client.post(
                "/api/stories", json={"feature": "Mine"}, headers=headers
            ).status_code

        assert [post(KEY), post(KEY), post("second-key-0123456789")] == [202, 429, 202]


def test_read_rate_limit(migrated: SettingsFactory) -> None:
    with TestClient(create_app(migrated(read_rate_limit_per_minute=2))) as client:
        codes = [client.get("/api/stories").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert client.get("/healthz").status_code == 200


def test_token_bucket_refills_over_time() -> None:
    limiter = RateLimiter(per_minute=60)
    assert all(limiter.acquire("a", now=0.0) == 0 for _ in range(60))
    assert limiter.acquire("a", now=0.0) == pytest.approx(1.0)
    assert limiter.acquire("a", now=1.0) == 0
    assert limiter.acquire("b", now=1.0) == 0


def test_cors_only_for_configured_origins(migrated: SettingsFactory) -> None:
    with TestClient(create_app(migrated(cors_origins="https://app.example.com"))) as client:
        allowed = client.options(
            "/api/stories",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
        denied = client.get("/api/stories", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in denied.headers
        preflight = client.options(
            "/api/stories",
            headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 400


def test_no_cors_headers_without_configured_origins(client: TestClient) -> None:
    response = client.get("/api/stories", headers={"Origin": "https://app.example.com"})
    assert "access-control-allow-origin" not in response.headers


def test_secrets_never_reach_the_logs(
    migrated: SettingsFactory, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_api = "sk-ant-secret-value-do-not-log"
    settings = migrated(
        api_keys=KEY,
        anthropic_api_key=secret_api,
        anthropic_base_url="http://127.0.0.1:9",
        anthropic_max_attempts=1,
        log_level="debug",
    )
    with TestClient(create_app(settings)) as client:
        client.post(
            "/api/stories",
            json={"feature": "Log hygiene"},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        client.post(
            "/api/stories", json={"feature": "x"}, headers={"Authorization": "Bearer wrong"}
        )
        client.get("/api/stories")
    logged = capsys.readouterr().out + caplog.text
    assert "service started" in logged
    assert secret_api not in logged
    assert KEY not in logged
    assert "wrong" not in logged
    assert secret_api not in repr(settings)


def test_request_id_is_echoed_and_logged(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert len(generated.headers["x-request-id"]) == 32
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    access = [line for line in lines if line["logger"] == "service.access"]
    assert any(line.get("request_id") == "abc-123" and line["status"] == 200 for line in access)
