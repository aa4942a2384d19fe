"""Fixtures for the service: settings per database, the fake Messages API, running apps
(in process, and `python -m service` as a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from service.migrate import upgrade
from service.settings import Settings
from tests.service.fake_anthropic import FakeMessagesAPI
from tests.web.web_servers import free_port, wait_for_http

REPO = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
SETTINGS_ENV = [
    "APP_ENV",
    "DATABASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_MODEL",
    "API_KEYS",
    "CORS_ORIGINS",
    "RATE_LIMIT_PER_MINUTE",
    "READ_RATE_LIMIT_PER_MINUTE",
    "MAX_CONCURRENT_GENERATIONS",
    "LOG_LEVEL",
    "WORKERS",
    "PORT",
    "HOST",
    "AUTH_FAILURES_PER_MINUTE",
    "DOCS_ENABLED",
    "FORWARDED_ALLOW_IPS",
    "PROCESS_ROLE",
    "GENERATOR",
    "OPS_RATE_LIMIT_PER_MINUTE",
]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come only from what each test passes, never from the developer's shell."""
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)


def postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else why not."""
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL database, dropped afterwards."""
    import psycopg

    reason = postgres_reachable()
    if reason:
        pytest.skip(reason)
    name = f"autodevhub_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/var/stories.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file in the test's temporary directory."""
    return f"sqlite:///{tmp_path}/var/stories.db"


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(database_url: str) -> SettingsFactory:
    """Settings on the test database with fast worker timings; keyword overrides win."""

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "worker_poll_seconds": 0.2,
            "anthropic_backoff_seconds": 0.01,
            "anthropic_backoff_max_seconds": 0.05,
            "rate_limit_per_minute": 0,
            "read_rate_limit_per_minute": 0,
            "access_log": True,
        }
        values.update(overrides)
        return Settings(**values)

    return factory


@pytest.fixture
def migrated(make_settings: SettingsFactory) -> SettingsFactory:
    """Like make_settings, with the database migrated to head first."""
    upgrade(make_settings())
    return make_settings


@pytest.fixture
def fake_api() -> Iterator[FakeMessagesAPI]:
    """The fake Messages API on a random port."""
    api = FakeMessagesAPI().start()
    yield api
    api.stop()


@pytest.fixture
def client(migrated: SettingsFactory) -> Iterator[TestClient]:
    """A running app with the offline generator and no auth."""
    with TestClient(create_app(migrated())) as test_client:
        yield test_client


def wait_for(client: TestClient, story_set_id: str, timeout: float = 15.0) -> dict[str, Any]:
    """Poll until the story set is done or failed."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/api/stories/{story_set_id}").json()
        if body["status"] in {"done", "failed"}:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"story set still {body['status']} after {timeout}s")
        time.sleep(0.05)


def anthropic_settings(
    make_settings: SettingsFactory, api: FakeMessagesAPI, **extra: Any
) -> Settings:
    """Settings that point the real SDK at the fake API."""
    values: dict[str, Any] = {
        "anthropic_api_key": "sk-ant-test-key-0123456789",
        "anthropic_base_url": api.base_url,
        "anthropic_model": "claude-test-model",
        "anthropic_timeout_seconds": 0.5,
        "anthropic_max_attempts": 3,
    }
    values.update(extra)
    return make_settings(**values)


@dataclass(kw_only=True, frozen=True)
class ServedService:
    """A `python -m service` process, where it listens and where it logs."""

    proc: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def send_signal(self, sig: int) -> None:
        """Send `sig` to the process (SIGKILL for a crash, SIGTERM for an orderly stop)."""
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """The exit code, once the process has ended within `timeout` seconds."""
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM and wait; SIGKILL if it has not ended within `timeout` seconds."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def serve_service(
    settings: Mapping[str, str],
    log: Path,
    *,
    args: Sequence[str] = (),
    cwd: Path | None = None,
    timeout: float = 30,
) -> ServedService:
    """`python -m service [args]` (`args`: `worker` for the worker role) on a free port with
    the environment variables `settings`, its output appended to `log`, returned once /readyz
    answers 200.

    Nothing the service reads comes from the caller's shell: the settings variables are
    dropped from the inherited environment, so only `settings` (and the defaults) count.
    """
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name not in SETTINGS_ENV and not name.startswith(("ANTHROPIC_", "LIST_CACHE"))
    }
    port = free_port()
    python_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**inherited, "PYTHONPATH": python_path, **settings, "PORT": str(port)}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service", *args],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = ServedService(proc=proc, base_url=f"http://127.0.0.1:{port}", log=log)
    try:
        wait_for_http(f"{served.base_url}/readyz", proc, log, timeout)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        raise
    return served
