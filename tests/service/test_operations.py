"""Health, readiness, metrics, settings and the `python -m service` entry points."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service.db import normalize_url
from service.main import create_app
from service.settings import Settings
from tests.service.conftest import SettingsFactory, wait_for


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_when_migrated(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["migration"] == body["head"] == "0003"
    assert body["generator"] == "offline"


def test_readyz_is_503_before_migrations(make_settings: SettingsFactory) -> None:
    with TestClient(create_app(make_settings())) as client:
        response = client.get("/readyz")
        assert client.get("/healthz").status_code == 200
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert "python -m service migrate" in body["reason"]


def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    settings = Settings(database_url="postgresql://nobody@127.0.0.1:1/none")
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"
    assert "postgresql://nobody" not in response.text


def test_metrics_cover_requests_errors_and_generation(client: TestClient) -> None:
    created = client.post("/api/stories", json={"feature": "Count me"}).json()
    wait_for(client, created["id"])
    client.get("/api/stories/0123456789abcdef0123456789abcdef")
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'http_requests_total{method="POST",route="/api/stories",status="202"} 1.0' in text
    assert (
        'http_request_errors_total{method="GET",route="/api/stories/{story_set_id}",status="404"}'
        in text
    )
    assert (
        'http_request_duration_seconds_bucket{le="0.1",method="POST",route="/api/stories"}' in text
    )
    assert 'stories_generated_total{generator="offline"}' in text
    assert 'story_sets_finished_total{generator="offline",outcome="done"} 1.0' in text
    assert "generations_in_flight 0.0" in text


def test_unmatched_paths_share_one_metrics_label(client: TestClient) -> None:
    for path in ("/nope/1", "/nope/2"):
        assert client.get(path).status_code == 404
    assert 'route="unmatched",status="404"} 2.0' in client.get("/metrics").text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///./var/x.db", "sqlite:///./var/x.db"),
    ],
)
def test_database_urls_use_psycopg3(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


def test_settings_defaults() -> None:
    settings = Settings()
    assert settings.port == 8000
    assert settings.app_env == "dev"
    assert settings.database_url.get_secret_value() == "sqlite:///./var/autodevhub.db"
    assert settings.generator_name == "offline"
    assert settings.should_migrate_on_start


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"anthropic_api_key": "changeme", "api_keys": "real-key-123"}, "ANTHROPIC_API_KEY"),
        (
            {"database_url": "postgresql://app:CHANGEME@db/app", "api_keys": "real-key-123"},
            "DATABASE_URL",
        ),
        ({"api_keys": "placeholder"}, "API_KEYS contains a placeholder"),
    ],
)
def test_placeholder_secrets_are_refused_outside_dev(overrides: dict[str, str], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        Settings(app_env="prod", **overrides)
    Settings(app_env="dev", **overrides)


def test_open_writes_outside_dev_are_refused(make_settings: SettingsFactory) -> None:
    with pytest.raises(ValidationError, match="API_KEYS is empty"):
        make_settings(app_env="prod")


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "staging")
    monkeypatch.setenv("API_KEYS", "one-key-0123456789abcdef, two-key-0123456789abcdef")
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:Zx9vQ2rT7wLm4kP@db/app")
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "")
    monkeypatch.setenv("GENERATOR", "offline")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    settings = Settings()
    assert len(settings.api_keys) == 2
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.anthropic_api_key is None
    assert settings.log_level == "warning"
    assert not settings.should_migrate_on_start


def _run_service(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_migrate_command_creates_the_sqlite_directory(tmp_path: Path) -> None:
    result = _run_service("migrate", env={}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var" / "autodevhub.db").exists()
    assert '"revision": "0003"' in result.stdout


@pytest.mark.postgres
def test_migrate_command_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    result = _run_service("migrate", env={"DATABASE_URL": postgres_url}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    again = _run_service("migrate", env={"DATABASE_URL": postgres_url}, cwd=tmp_path)
    assert again.returncode == 0, again.stderr


def test_bad_settings_exit_2_with_the_field(tmp_path: Path) -> None:
    result = _run_service("migrate", env={"APP_ENV": "prod", "PORT": "99999"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "invalid settings" in result.stderr and "port" in result.stderr


def test_service_does_not_import_the_cli() -> None:
    code = (
        "import sys, service.main; print(any(m.startswith('autodevhub_cli') for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_active_clients_gauge_counts_distinct_addresses(client: TestClient) -> None:
    client.get("/healthz")
    client.get("/healthz")
    assert "active_clients 1.0" in client.get("/metrics").text
