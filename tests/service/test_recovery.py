"""A restart never loses a request: queued and running work is picked up again or failed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from service.db import make_engine, make_session_factory
from service.main import create_app
from service.models import StorySetRecord
from service.repository import StoryRepository, utcnow
from service.schemas import StoryRequest
from tests.service.conftest import SettingsFactory, anthropic_settings, wait_for
from tests.service.fake_anthropic import FakeMessagesAPI


def _status(client: TestClient, story_set_id: str) -> str:
    return str(client.get(f"/api/stories/{story_set_id}").json()["status"])


def _wait_status(client: TestClient, story_set_id: str, status: str) -> None:
    deadline = time.monotonic() + 10
    while _status(client, story_set_id) != status:
        assert time.monotonic() < deadline, f"never reached {status}"
        time.sleep(0.05)


def test_orderly_shutdown_requeues_running_work(
    migrated: SettingsFactory, fake_api: FakeMessagesAPI
) -> None:
    fake_api.delay_seconds = 5
    settings = anthropic_settings(migrated, fake_api, anthropic_timeout_seconds=10)
    with TestClient(create_app(settings)) as first:
        story_set_id = first.post("/api/stories", json={"feature": "Pay by card"}).json()["id"]
        _wait_status(first, story_set_id, "running")
    fake_api.delay_seconds = 0
    with TestClient(create_app(settings)) as second:
        done = wait_for(second, story_set_id)
    assert done["status"] == "done"
    assert done["generator"] == "anthropic"


def _insert_abandoned(settings_factory: SettingsFactory, attempts: int) -> str:
    """A `running` row whose lease ran out, as a killed process leaves it."""
    settings = settings_factory()
    engine = make_engine(settings)
    repo = StoryRepository(engine, make_session_factory(engine))
    created = repo.create(StoryRequest(feature="Left behind by a crash"))
    with repo.sessions.begin() as session:
        record = session.get(StorySetRecord, created["id"])
        assert record is not None
        record.status = "running"
        record.attempts = attempts
        record.lease_expires_at = utcnow() - timedelta(seconds=1)
    engine.dispose()
    return str(created["id"])


def test_abandoned_running_work_is_picked_up_on_start(migrated: SettingsFactory) -> None:
    story_set_id = _insert_abandoned(migrated, attempts=1)
    with TestClient(create_app(migrated())) as client:
        done = wait_for(client, story_set_id)
    assert done["status"] == "done"
    assert done["generator"] == "offline"


def test_work_interrupted_too_often_is_failed_with_reason(migrated: SettingsFactory) -> None:
    story_set_id = _insert_abandoned(migrated, attempts=3)
    with TestClient(create_app(migrated(generation_max_claims=3))) as client:
        failed = wait_for(client, story_set_id)
    assert failed["status"] == "failed"
    assert "interrupted 3 times" in failed["error"]


def test_queued_work_survives_a_stopped_service(migrated: SettingsFactory) -> None:
    settings = migrated()
    engine = make_engine(settings)
    created = StoryRepository(engine, make_session_factory(engine)).create(
        StoryRequest(feature="Stored while no worker ran")
    )
    engine.dispose()
    with TestClient(create_app(settings)) as client:
        assert wait_for(client, created["id"])["status"] == "done"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "service"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{env['PORT']}/readyz").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("service did not become ready")


def test_killed_process_loses_nothing(database_url: str, fake_api: FakeMessagesAPI) -> None:
    """SIGKILL mid-generation; the next process takes the work over once the lease runs out."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "MIGRATE_ON_START": "true",
        "ANTHROPIC_API_KEY": "sk-ant-test-key-0123456789",
        "ANTHROPIC_BASE_URL": fake_api.base_url,
        "ANTHROPIC_TIMEOUT_SECONDS": "30",
        "GENERATION_LEASE_SECONDS": "1",
        "WORKER_POLL_SECONDS": "0.2",
        "LOG_LEVEL": "warning",
    }
    fake_api.delay_seconds = 10
    base = f"http://127.0.0.1:{port}"
    proc = _serve(env)
    try:
        story_set_id = httpx.post(
            f"{base}/api/stories", json={"feature": "Survive a crash"}
        ).json()["id"]
        deadline = time.monotonic() + 10
        while httpx.get(f"{base}/api/stories/{story_set_id}").json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    fake_api.delay_seconds = 0
    proc = _serve(env)
    try:
        deadline = time.monotonic() + 20
        while True:
            body = httpx.get(f"{base}/api/stories/{story_set_id}").json()
            if body["status"] in {"done", "failed"}:
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert body["status"] == "done", body
    assert len(fake_api.calls) == 2


@pytest.mark.parametrize("attempts", [0])
def test_release_does_not_count_an_orderly_stop(migrated: SettingsFactory, attempts: int) -> None:
    settings = migrated()
    engine = make_engine(settings)
    repo = StoryRepository(engine, make_session_factory(engine))
    created = repo.create(StoryRequest(feature="Released on shutdown"))
    [job] = repo.claim(5, 60)
    assert job.id == created["id"] and job.attempts == 1
    repo.release([job.id])
    [again] = repo.claim(5, 60)
    assert again.attempts == attempts + 1
    engine.dispose()
