"""A restart never loses a request: queued and running work is picked up again or failed."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.db import make_engine, make_session_factory
from service.main import create_app
from service.models import StorySetRecord
from service.repository import Claimant, StoryRepository, utcnow
from service.schemas import StoryRequest
from service.settings import Settings
from tests.service.conftest import (
    SettingsFactory,
    anthropic_settings,
    serve_service,
    wait_for,
)
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


def _insert_abandoned(
    settings_factory: SettingsFactory, attempts: int, *, alone: bool = False, crashes_alone: int = 0
) -> str:
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
        record.claimed_alone = alone
        record.crashes_alone = crashes_alone
        record.lease_expires_at = utcnow() - timedelta(seconds=1)
    engine.dispose()
    return str(created["id"])


def test_abandoned_running_work_is_picked_up_on_start(migrated: SettingsFactory) -> None:
    story_set_id = _insert_abandoned(migrated, attempts=1)
    with TestClient(create_app(migrated())) as client:
        done = wait_for(client, story_set_id)
    assert done["status"] == "done"
    assert done["generator"] == "offline"


def test_work_interrupted_too_often_alone_is_failed_with_reason(
    migrated: SettingsFactory,
) -> None:
    story_set_id = _insert_abandoned(migrated, attempts=4, alone=True, crashes_alone=2)
    with TestClient(create_app(migrated(generation_max_claims=3))) as client:
        failed = wait_for(client, story_set_id)
    assert failed["status"] == "failed"
    assert "interrupted 3 times while it ran alone" in failed["error"]


def test_work_interrupted_as_often_in_company_is_retried(migrated: SettingsFactory) -> None:
    """Three crashes while other sets ran beside it say nothing about this set."""
    story_set_id = _insert_abandoned(migrated, attempts=3)
    with TestClient(create_app(migrated(generation_max_claims=3))) as client:
        done = wait_for(client, story_set_id)
    assert done["status"] == "done"


def test_queued_work_survives_a_stopped_service(migrated: SettingsFactory) -> None:
    settings = migrated()
    engine = make_engine(settings)
    created = StoryRepository(engine, make_session_factory(engine)).create(
        StoryRequest(feature="Stored while no worker ran")
    )
    engine.dispose()
    with TestClient(create_app(settings)) as client:
        assert wait_for(client, created["id"])["status"] == "done"


def _service_env(
    database_url: str, fake_api: FakeMessagesAPI, tmp: Path, **extra: str
) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "MIGRATE_ON_START": "true",
        "ANTHROPIC_API_KEY": "sk-ant-test-key-0123456789",
        "ANTHROPIC_BASE_URL": fake_api.base_url,
        "ANTHROPIC_TIMEOUT_SECONDS": "120",
        "MAX_CONCURRENT_GENERATIONS": "16",
        "WORKER_POLL_SECONDS": "0.2",
        "WORKER_NAME": "crash-test",
        "WORKER_SLOT_DIR": str(tmp / "slots"),
        "LOG_LEVEL": "warning",
        "RATE_LIMIT_PER_MINUTE": "0",
        "READ_RATE_LIMIT_PER_MINUTE": "0",
        **extra,
    }


def _statuses(base: str, ids: list[str]) -> dict[str, str]:
    page = httpx.get(f"{base}/api/stories", params={"limit": 100}).json()["items"]
    found = {item["id"]: item["status"] for item in page}
    return {story_id: found.get(story_id, "missing") for story_id in ids}


def _settled(base: str, ids: list[str], since: float) -> dict[str, str]:
    """The statuses once every story set is done or failed; fails 60 s after `since`."""
    while True:
        statuses = _statuses(base, ids)
        if all(status in {"done", "failed"} for status in statuses.values()):
            return statuses
        assert time.monotonic() - since < 60, Counter(statuses.values())
        time.sleep(0.2)


def _model_calls(fake_api: FakeMessagesAPI) -> Counter[str]:
    """How often the model was asked for each feature."""
    calls: Counter[str] = Counter()
    for call in fake_api.calls:
        prompt = call["body"]["messages"][0]["content"]
        text = prompt if isinstance(prompt, str) else prompt[0]["text"]
        calls[text.split("\n")[1]] += 1
    return calls


def _requeued(log: Path) -> list[tuple[str, list[str]]]:
    """(reason, ids) of every requeue the service logged."""
    found = []
    for line in log.read_text().splitlines():
        if line.startswith("{") and "requeued generations" in line:
            entry = json.loads(line)
            found.append((entry["reason"], entry["requeued"] + entry["failed"]))
    return found


def test_sigkill_mid_generation_then_restart_finishes_everything_once(
    database_url: str, fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    """50 sets, 16 generating when the process is SIGKILLed; the restarted process takes its
    slot, requeues its earlier incarnation's 16 at once (the 300 s leases are not waited for),
    and every set is done within 60 s, the model asked once per set plus once per logged
    requeue."""
    env = _service_env(database_url, fake_api, tmp_path, GENERATION_LEASE_SECONDS="300")
    log = tmp_path / "service.log"
    fake_api.delay_seconds = 60  # generations that are still running when the process dies
    proc = serve_service(env, log)
    try:
        ids = [
            httpx.post(
                f"{proc.base_url}/api/stories", json={"feature": f"Crash feature {n}"}
            ).json()["id"]
            for n in range(50)
        ]
        deadline = time.monotonic() + 20
        while Counter(_statuses(proc.base_url, ids).values())["running"] < 16:
            assert time.monotonic() < deadline, _statuses(proc.base_url, ids)
            time.sleep(0.1)
        deadline = time.monotonic() + 20
        while len(fake_api.calls) < 16:  # each of the 16 is at the model
            assert time.monotonic() < deadline, len(fake_api.calls)
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert Counter(_statuses_offline(database_url, ids).values()) == {"running": 16, "queued": 34}
    fake_api.delay_seconds = 0.2
    restarted = time.monotonic()
    proc = serve_service(env, log)
    try:
        statuses = _settled(proc.base_url, ids, restarted)
        took = time.monotonic() - restarted
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert set(statuses.values()) == {"done"}, Counter(statuses.values())
    assert took < 60
    requeues = _requeued(log)
    assert [reason for reason, _ in requeues] == ["earlier incarnation of this slot"], requeues
    retried = set(requeues[0][1])
    assert len(retried) == 16 and retried <= set(ids)
    calls = _model_calls(fake_api)
    features = {story_id: f"Crash feature {n}" for n, story_id in enumerate(ids)}
    expected = {features[i]: 2 if i in retried else 1 for i in ids}
    assert dict(calls) == expected


def _statuses_offline(database_url: str, ids: list[str]) -> dict[str, str]:
    """Statuses read from the database while no service runs."""
    engine = make_engine(Settings(database_url=database_url))
    try:
        repo = StoryRepository(engine, make_session_factory(engine))
        return {story_id: (repo.get(story_id) or {}).get("status", "missing") for story_id in ids}
    finally:
        engine.dispose()


def test_a_dead_process_s_work_is_taken_over_within_its_lease(
    database_url: str, fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    """SIGKILL with no restart: another running process requeues the set once its lease (2 s,
    renewed every 0.5 s while the owner lived) runs out, and finishes it."""
    env = _service_env(database_url, fake_api, tmp_path, GENERATION_LEASE_SECONDS="2")
    fake_api.delay_seconds = 30
    doomed = serve_service(env, tmp_path / "doomed.log")
    try:
        story_set_id = httpx.post(
            f"{doomed.base_url}/api/stories", json={"feature": "Survive a crash"}
        ).json()["id"]
        deadline = time.monotonic() + 10
        while len(fake_api.calls) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(3)  # past one lease: the owner's heartbeat kept it
        assert _statuses(doomed.base_url, [story_set_id])[story_set_id] == "running"
        fake_api.delay_seconds = 0
        survivor = serve_service(env, tmp_path / "survivor.log")
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
    try:
        killed = time.monotonic()
        while _statuses(survivor.base_url, [story_set_id])[story_set_id] != "done":
            assert time.monotonic() - killed < 15
            time.sleep(0.1)
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(30)
    assert len(fake_api.calls) == 2
    assert _requeued(tmp_path / "survivor.log") == [("lease expired", [story_set_id])]


@pytest.mark.parametrize("attempts", [0])
def test_release_does_not_count_an_orderly_stop(migrated: SettingsFactory, attempts: int) -> None:
    settings = migrated()
    engine = make_engine(settings)
    repo = StoryRepository(engine, make_session_factory(engine))
    created = repo.create(StoryRequest(feature="Released on shutdown"))
    me = Claimant(slot="host/0", token="a" * 32)
    [job] = repo.claim(5, 60, me)
    assert job.id == created["id"] and job.attempts == 1
    repo.release([job.id], me)
    [again] = repo.claim(5, 60, me)
    assert again.attempts == attempts + 1
    engine.dispose()


def test_three_crashes_a_few_seconds_apart_fail_no_set(
    database_url: str, fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    """The process is SIGKILLed three times, each time while generations are at the model: the
    first time with four sets side by side, then with one retried alone each time. Once it runs
    again, every set is done: before, the four oldest were failed for good ("interrupted 3
    times") by crashes that had nothing to do with them."""
    env = _service_env(
        database_url,
        fake_api,
        tmp_path,
        GENERATION_LEASE_SECONDS="300",
        MAX_CONCURRENT_GENERATIONS="4",
        GENERATION_MAX_CLAIMS="3",
    )
    log = tmp_path / "service.log"
    fake_api.delay_seconds = 60  # every generation is still at the model when the process dies
    ids: list[str] = []
    for crash in range(3):
        asked = len(fake_api.calls)
        proc = serve_service(env, log)
        try:
            if not ids:
                ids = [
                    httpx.post(
                        f"{proc.base_url}/api/stories", json={"feature": f"Crash feature {n}"}
                    ).json()["id"]
                    for n in range(8)
                ]
            deadline = time.monotonic() + 20
            while len(fake_api.calls) == asked:  # a generation of this incarnation is running
                assert time.monotonic() < deadline, f"crash {crash}: nothing generated"
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    statuses = _statuses_offline(database_url, ids)
    assert "failed" not in statuses.values(), statuses
    fake_api.delay_seconds = 0.05
    restarted = time.monotonic()
    proc = serve_service(env, log)
    try:
        statuses = _settled(proc.base_url, ids, restarted)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert set(statuses.values()) == {"done"}, Counter(statuses.values())
