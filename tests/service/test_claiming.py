"""Claiming work from the database queue: never more than asked, never twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from service.db import make_engine, make_session_factory
from service.repository import StoryRepository
from service.schemas import StoryRequest
from tests.service.conftest import SettingsFactory


def _repository(settings_factory: SettingsFactory) -> StoryRepository:
    engine = make_engine(settings_factory())
    return StoryRepository(engine, make_session_factory(engine))


def test_claim_takes_the_oldest_up_to_the_limit(migrated: SettingsFactory) -> None:
    repo = _repository(migrated)
    ids = [repo.create(StoryRequest(feature=f"Feature {i}"))["id"] for i in range(5)]
    first = repo.claim(2, 60)
    assert sorted(job.id for job in first) == sorted(ids[:2])
    assert all(job.attempts == 1 for job in first)
    rest = repo.claim(10, 60)
    assert sorted(job.id for job in rest) == sorted(ids[2:])
    assert repo.claim(10, 60) == []
    repo.engine.dispose()


def test_concurrent_claimers_never_share_a_set(migrated: SettingsFactory) -> None:
    repos = [_repository(migrated) for _ in range(4)]
    total = 60
    for i in range(total):
        repos[0].create(StoryRequest(feature=f"Feature {i}"))

    def drain(repo: StoryRepository) -> list[str]:
        taken: list[str] = []
        while batch := repo.claim(3, 60):
            assert len(batch) <= 3
            taken += [job.id for job in batch]
        return taken

    with ThreadPoolExecutor(len(repos)) as pool:
        results = list(pool.map(drain, repos))
    claimed = [story_set_id for taken in results for story_set_id in taken]
    assert len(claimed) == total
    assert len(set(claimed)) == total
    for repo in repos:
        repo.engine.dispose()
