"""Outside dev the service refuses to start on unsafe settings: each case is the input, the
exit code and the words the operator must see, and never the secret itself."""

from __future__ import annotations

import hashlib
import os
import random
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from service import safety
from service.settings import Settings

KEY = "k3y-for-tests-0123456789abcdef"
SAFE_DATABASE = "postgresql://app:Zx9vQ2rT7wLm4kP@db.internal:5432/app"


def _prod(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "app_env": "prod",
        "database_url": SAFE_DATABASE,
        "api_keys": KEY,
        "generator": "offline",
    }
    values.update(overrides)
    return Settings(**values)


def _refusal(**overrides: Any) -> str:
    with pytest.raises(ValidationError) as raised:
        _prod(**overrides)
    errors = raised.value.errors()
    assert all(e["type"] == "unsafe_setting" for e in errors), errors
    return "\n".join(e["msg"] for e in errors)


def test_safe_settings_start_in_prod_and_staging() -> None:
    assert _prod().app_env == "prod"
    assert _prod(app_env="staging", database_url="sqlite:////data/autodevhub.db").app_env


@pytest.mark.parametrize(
    ("overrides", "setting", "words"),
    [
        ({"api_keys": ""}, "API_KEYS", "API_KEYS is empty"),
        ({"api_keys": "1"}, "API_KEYS", "weak key (entry 1 of 1)"),
        ({"api_keys": "admin"}, "API_KEYS", "weak key"),
        ({"api_keys": "short-key-12345"}, "API_KEYS", "at least 20 characters"),
        ({"api_keys": "a" * 40}, "API_KEYS", "10 of them different"),
        ({"api_keys": "abababababababababababab"}, "API_KEYS", "weak key"),
        ({"api_keys": f"{KEY},<your-api-key-goes-here>"}, "API_KEYS", "entry 2 of 2"),
        ({"api_keys": "replace-me-with-a-real-key-0123"}, "API_KEYS", "weak key"),
        (
            {"api_keys": "sha256:" + hashlib.sha256(b"changeme").hexdigest()},
            "API_KEYS",
            "placeholder",
        ),
        ({"anthropic_api_key": "sk-ant-REPLACE_ME"}, "ANTHROPIC_API_KEY", "placeholder"),
        ({"anthropic_api_key": "<your-api-key>"}, "ANTHROPIC_API_KEY", "placeholder"),
        ({"anthropic_api_key": "your-anthropic-key"}, "ANTHROPIC_API_KEY", "placeholder"),
        ({"anthropic_api_key": "sk-ant-CHANGEME"}, "ANTHROPIC_API_KEY", "placeholder"),
        ({"anthropic_api_key": "sk-ant-xxxxxxxxxxxx"}, "ANTHROPIC_API_KEY", "placeholder"),
        ({"anthropic_api_key": "sk-ant-..."}, "ANTHROPIC_API_KEY", "placeholder"),
        ({"anthropic_api_key": "${ANTHROPIC_API_KEY}"}, "ANTHROPIC_API_KEY", "placeholder"),
        ({"anthropic_api_key": "{{ anthropic_key }}"}, "ANTHROPIC_API_KEY", "placeholder"),
        ({"anthropic_api_key": "dummy"}, "ANTHROPIC_API_KEY", "placeholder"),
        ({"database_url": safety.DEFAULT_DATABASE_URL}, "DATABASE_URL", "for dev only"),
        ({"database_url": "postgresql://postgres:postgres@db/app"}, "DATABASE_URL", "password"),
        ({"database_url": "postgresql://app:password@db/app"}, "DATABASE_URL", "password"),
        ({"database_url": "postgresql://app:@db/app"}, "DATABASE_URL", "empty"),
        ({"database_url": "postgresql://app:changeme@db/app"}, "DATABASE_URL", "placeholder"),
        ({"database_url": "postgresql://app:app@db/app"}, "DATABASE_URL", "user name"),
        ({"database_url": "postgres://app:Secret@db/app"}, "DATABASE_URL", "password"),
        ({"database_url": "postgresql://u:p@your-db-host/app"}, "DATABASE_URL", "placeholder"),
        ({"api_keys": "Password12345678901234!"}, "API_KEYS", "weak key"),
        ({"generator": None}, "ANTHROPIC_API_KEY", "GENERATOR=offline"),
        ({"generator": None, "anthropic_api_key": " "}, "ANTHROPIC_API_KEY", "unset or empty"),
        ({"generator": None, "process_role": "worker"}, "ANTHROPIC_API_KEY", "offline generator"),
        ({"anthropic_api_key": "password1"}, "ANTHROPIC_API_KEY", "too short or too simple"),
        ({"anthropic_api_key": "Password123456789012!"}, "ANTHROPIC_API_KEY", "common password"),
        ({"database_url": "postgresql://app:password1@db/app"}, "DATABASE_URL", "password1"),
        ({"database_url": "postgresql://app:Tr0ub4dor&3@db/app"}, "DATABASE_URL", "under 12"),
        ({"database_url": "postgresql://app:Postgres2024!!!@db/app"}, "DATABASE_URL", "well-known"),
        ({"database_url": "postgresql://app:App-20241206@db/app"}, "DATABASE_URL", "user name"),
        ({"database_url": "sqlite:///var/autodevhub.db"}, "DATABASE_URL", "relative path"),
        ({"database_url": "sqlite:///./data/stories.db"}, "DATABASE_URL", "four slashes"),
        ({"database_url": "sqlite://"}, "DATABASE_URL", "in-memory"),
        ({"database_url": "sqlite:///:memory:"}, "DATABASE_URL", "in-memory"),
        ({"cors_origins": "*"}, "CORS_ORIGINS", "any web page"),
        ({"cors_origins": "https://a.example.com, null"}, "CORS_ORIGINS", "`null`"),
        ({"anthropic_base_url": "http://api.anthropic.com"}, "ANTHROPIC_BASE_URL", "https://"),
        ({"anthropic_base_url": "http://8.8.8.8:8080"}, "ANTHROPIC_BASE_URL", "private IP"),
        ({"anthropic_base_url": "http://gateway.internal"}, "ANTHROPIC_BASE_URL", "loopback"),
        ({"anthropic_base_url": "ftp://10.0.0.1/"}, "ANTHROPIC_BASE_URL", "unencrypted"),
        ({"anthropic_base_url": "api.anthropic.com"}, "ANTHROPIC_BASE_URL", "https://"),
        ({"forwarded_allow_ips": "*"}, "FORWARDED_ALLOW_IPS", "X-Forwarded-For"),
        ({"forwarded_allow_ips": "10.0.0.0/8, *"}, "FORWARDED_ALLOW_IPS", "proxies"),
        ({"forwarded_allow_ips": "0.0.0.0/0"}, "FORWARDED_ALLOW_IPS", "trusts every address"),
        ({"forwarded_allow_ips": "::/0"}, "FORWARDED_ALLOW_IPS", "X-Forwarded-For"),
        ({"forwarded_allow_ips": "10.0.0.0/8,::/0"}, "FORWARDED_ALLOW_IPS", "every address"),
        ({"forwarded_allow_ips": "0.0.0.0/0.0.0.0"}, "FORWARDED_ALLOW_IPS", "every address"),
        (
            {"forwarded_allow_ips": "0.0.0.0/1, 128.0.0.0/1"},
            "FORWARDED_ALLOW_IPS",
            "together cover all addresses",
        ),
    ],
)
@pytest.mark.parametrize("app_env", ["staging", "prod"])
def test_unsafe_settings_are_refused_outside_dev(
    overrides: dict[str, str], setting: str, words: str, app_env: str
) -> None:
    message = _refusal(app_env=app_env, **overrides)
    assert message.startswith(setting) and words in message, message
    assert f"APP_ENV={app_env}" in message
    Settings(app_env="dev", **overrides)  # dev starts with anything


@pytest.mark.parametrize(
    "overrides",
    [
        {"api_keys": "sha256:" + hashlib.sha256(b"any key at all").hexdigest()},
        {"api_keys": "0123456789abcdefghij"},  # exactly 20, 20 different
        {"api_keys": f"{KEY}, second-key-0123456789"},
        {"anthropic_api_key": "sk-ant-api03-" + "Q1w2E3r4T5y6U7i8O9p0" * 5},
        {"database_url": "postgresql://app@db/app?sslmode=verify-full"},  # certificate auth
        {"database_url": "postgresql://app:s%40fe%2Fpass-9Qz7@db/app"},
        {"database_url": "sqlite:////data/autodevhub.db"},
        {"forwarded_allow_ips": "10.0.0.0/8,192.168.0.7"},
        {"generator": None, "anthropic_api_key": "sk-ant-api03-" + "Q1w2E3r4T5y6U7i8O9p0" * 5},
        {"generator": None, "process_role": "api"},  # queues only: needs no model key
        {"generator": "offline", "anthropic_api_key": None},
        {"anthropic_base_url": "https://gateway.example.com/anthropic"},
        {"anthropic_base_url": "http://127.0.0.1:8080"},
        {"anthropic_base_url": "http://localhost:8080"},
        {"anthropic_base_url": "http://[::1]:8080"},
        {"anthropic_base_url": "http://192.168.1.20:8080"},
        {"cors_origins": "https://stories.example.com, https://admin.example.com"},
        {"database_url": "sqlite:////data/autodevhub.db?timeout=5"},
        {"database_url": "postgresql://app:" + "9f3b" * 6 + "@db/app"},
        {"forwarded_allow_ips": "10.0.0.0/8, fd00::/8, 127.0.0.1"},
    ],
)
def test_safe_values_are_accepted_outside_dev(overrides: dict[str, str]) -> None:
    _prod(**overrides)


def test_random_keys_are_never_taken_for_placeholders() -> None:
    rng = random.Random(20261201)
    alphabet = string.ascii_letters + string.digits + "-_"
    for _ in range(2000):
        key = "".join(rng.choice(alphabet) for _ in range(40))
        assert not safety.api_key_is_weak(key), key
        anthropic = "sk-ant-api03-" + "".join(rng.choice(alphabet) for _ in range(95))
        assert safety.anthropic_api_key_problem(anthropic, "prod") is None, anthropic


def test_every_unsafe_setting_is_reported_at_once() -> None:
    message = _refusal(
        database_url=safety.DEFAULT_DATABASE_URL,
        api_keys="",
        anthropic_api_key="sk-ant-REPLACE_ME",
        anthropic_base_url="http://api.anthropic.com",
        forwarded_allow_ips="::/0",
        cors_origins="*",
    )
    for setting in (
        "DATABASE_URL",
        "API_KEYS",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "FORWARDED_ALLOW_IPS",
        "CORS_ORIGINS",
    ):
        assert setting in message


def test_each_refusal_is_one_paragraph() -> None:
    """One paragraph each, naming the setting first and saying what to do."""
    message = _refusal(
        generator=None,
        database_url="sqlite:///var/x.db",
        cors_origins="*",
        anthropic_base_url="http://8.8.8.8",
        forwarded_allow_ips="0.0.0.0/0",
    )
    paragraphs = message.split("\n")
    assert len(paragraphs) == 5
    for paragraph in paragraphs:
        assert paragraph.split()[0].isupper() and "refused for APP_ENV=prod" in paragraph
        assert any(verb in paragraph for verb in ("Set ", "Give ", "List ", "Use "))


@pytest.mark.parametrize("app_env", ["staging", "prod"])
def test_the_real_node_settings_are_accepted(app_env: str) -> None:
    """What tests/deploy/test_real_node.py gives the backend and the worker: the model a test
    double over plain http on the node bridge's gateway, the database on the host."""
    import secrets as tokens

    role = f"stg_{tokens.token_hex(4)}"
    database = f"postgresql+psycopg://{role}:{tokens.token_urlsafe(24)}@10.244.0.1:5432/{role}"
    model_key = f"sk-ant-{tokens.token_hex(24)}"
    Settings(
        app_env=app_env,
        process_role="worker",
        database_url=database,
        anthropic_api_key=model_key,
        anthropic_base_url="http://10.244.0.1:40123",
        forwarded_allow_ips="10.0.0.0/8",
    )
    Settings(
        app_env=app_env,
        process_role="api",
        database_url=database,
        anthropic_api_key=model_key,
        api_keys="key-" + tokens.token_hex(16),
        forwarded_allow_ips="10.0.0.0/8",
    )


def test_a_refusal_never_shows_the_value() -> None:
    with pytest.raises(ValidationError) as raised:
        _prod(
            api_keys="tiny-9x8y7w",
            anthropic_api_key="sk-ant-REPLACE_ME-q4r5s6",
            database_url="postgresql://app:app@db-host-k3m9/app",
        )
    text = str(raised.value) + repr(raised.value.errors(include_input=False))
    for secret in ("9x8y7w", "q4r5s6", "db-host-k3m9"):
        assert secret not in text


def _run_service(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            (
                "ANTHROPIC_",
                "API_KEYS",
                "DATABASE_URL",
                "APP_ENV",
                "FORWARDED_",
                "GENERATOR",
                "CORS_",
            )
        )
    }
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        env={**clean, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", ["serve", "migrate", "worker"])
def test_the_service_refuses_to_start_with_exit_2_and_no_traceback(
    tmp_path: Path, command: str
) -> None:
    result = _run_service(
        command,
        env={
            "APP_ENV": "prod",
            "API_KEYS": "admin",
            "ANTHROPIC_API_KEY": "sk-ant-REPLACE_ME-q4r5s6",
            "DATABASE_URL": "postgresql://postgres:postgres@db-host-k3m9/app",
        },
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "invalid settings:"
    assert [line.split()[0] for line in lines[1:]] == [
        "DATABASE_URL",
        "ANTHROPIC_API_KEY",
        "API_KEYS",
    ]
    assert "APP_ENV=prod" in lines[1] and "generated password" in lines[1]
    for secret in ("q4r5s6", "db-host-k3m9", "postgres:postgres"):
        assert secret not in result.stderr + result.stdout
    assert not (tmp_path / "var").exists(), "nothing was started or created"


def test_unset_settings_outside_dev_name_what_to_set(tmp_path: Path) -> None:
    result = _run_service("migrate", env={"APP_ENV": "staging"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "DATABASE_URL is not set" in result.stderr
    assert "API_KEYS is empty" in result.stderr and "openssl rand -hex 32" in result.stderr


def test_safe_settings_outside_dev_run(tmp_path: Path) -> None:
    result = _run_service(
        "migrate",
        env={
            "APP_ENV": "prod",
            "API_KEYS": KEY,
            "DATABASE_URL": f"sqlite:///{tmp_path}/prod.db",
            "GENERATOR": "offline",
        },
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "prod.db").exists()


def test_the_worker_needs_no_api_keys_outside_dev(tmp_path: Path) -> None:
    """The worker Deployment gets no API_KEYS: it serves only /healthz, /readyz and /metrics."""
    from tests.service.conftest import serve_service

    database = {
        "APP_ENV": "prod",
        "DATABASE_URL": f"sqlite:///{tmp_path}/prod.db",
        "GENERATOR": "offline",
    }
    migrated = _run_service("migrate", env={**database, "API_KEYS": KEY}, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    # Ready within 60 s without API_KEYS (a refused start-up would exit 2 first).
    worker = serve_service(
        database, tmp_path / "worker.log", args=("worker",), cwd=tmp_path, timeout=60
    )
    worker.stop(timeout=20)


def test_api_processes_still_need_keys_when_the_worker_does_not() -> None:
    worker = Settings(
        app_env="prod", database_url=SAFE_DATABASE, process_role="worker", generator="offline"
    )
    assert worker.api_keys == []
    with pytest.raises(ValidationError, match="API_KEYS is empty"):
        Settings(app_env="prod", database_url=SAFE_DATABASE, process_role="api")
