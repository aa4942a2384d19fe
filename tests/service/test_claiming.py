"""Claiming work from the database queue: never more than asked, never twice."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from service.db import make_engine, make_session_factory
from service.generation import GenerationInput
from service.offline_generator import OfflineGenerator
from service.repository import Claimant, StoryRepository
from service.schemas import StoryRequest
from tests.service.conftest import SettingsFactory


def _repository(settings_factory: SettingsFactory) -> StoryRepository:
    engine = make_engine(settings_factory())
    return StoryRepository(engine, make_session_factory(engine))


def _status(repo: StoryRepository, story_set_id: str) -> str:
    found = repo.get(story_set_id)
    assert found is not None
    return str(found["status"])


ME = Claimant(slot="host/0", token="a" * 32)


def test_claim_takes_the_oldest_up_to_the_limit(migrated: SettingsFactory) -> None:
    repo = _repository(migrated)
    ids = [repo.create(StoryRequest(feature=f"Feature {i}"))["id"] for i in range(5)]
    first = repo.claim(2, 60, ME)
    assert sorted(job.id for job in first) == sorted(ids[:2])
    assert all(job.attempts == 1 for job in first)
    rest = repo.claim(10, 60, ME)
    assert sorted(job.id for job in rest) == sorted(ids[2:])
    assert repo.claim(10, 60, ME) == []
    repo.engine.dispose()


def test_concurrent_claimers_never_share_a_set(migrated: SettingsFactory) -> None:
    repos = [_repository(migrated) for _ in range(4)]
    total = 60
    for i in range(total):
        repos[0].create(StoryRequest(feature=f"Feature {i}"))

    def drain(repo: StoryRepository) -> list[str]:
        taken: list[str] = []
        while batch := repo.claim(3, 60, ME):
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


def test_a_set_taken_over_cannot_be_written_by_its_old_owner(migrated: SettingsFactory) -> None:
    """The first claimant's lease ran out and another took the set: the first can neither renew,
    complete, fail nor release it; the new owner can."""
    repo = _repository(migrated)
    created = repo.create(StoryRequest(feature="Taken over"))
    old = Claimant(slot="host/0", token="1" * 32)
    new = Claimant(slot="host/1", token="2" * 32)
    [job] = repo.claim(1, -1, old)  # a lease that has already run out
    recovery = repo.recover_abandoned(3)
    assert recovery.requeued == [created["id"]] and recovery.failed == []
    [again] = repo.claim(1, 60, new)
    assert again.id == job.id and again.attempts == 2
    stories = asyncio.run(OfflineGenerator().generate(GenerationInput("Taken over")))
    assert repo.renew_leases([job.id], 60, old) == set()
    assert not repo.complete(job.id, "offline", None, stories, old)
    assert not repo.fail(job.id, "late", "offline", None, old)
    repo.release([job.id], old)
    assert _status(repo, job.id) == "running"
    assert repo.renew_leases([job.id], 60, new) == {job.id}
    assert repo.complete(job.id, "offline", None, stories, new)
    assert _status(repo, job.id) == "done"
    repo.engine.dispose()


def test_a_slot_recovers_what_its_earlier_incarnation_left_running(
    migrated: SettingsFactory,
) -> None:
    """Live leases of an earlier incarnation of the same slot are requeued at once; those of
    other slots wait for their lease."""
    repo = _repository(migrated)
    mine = repo.create(StoryRequest(feature="Mine, before the crash"))
    theirs = repo.create(StoryRequest(feature="Another process's"))
    before = Claimant(slot="host/0", token="1" * 32)
    other = Claimant(slot="host/1", token="3" * 32)
    repo.claim(1, 600, before)
    repo.claim(1, 600, other)
    now = Claimant(slot="host/0", token="4" * 32)
    assert repo.recover_abandoned(3).requeued == []
    recovery = repo.recover_abandoned(3, now)
    assert recovery.requeued == [mine["id"]], recovery
    assert _status(repo, mine["id"]) == "queued"
    assert _status(repo, theirs["id"]) == "running"
    repo.engine.dispose()


def _restart(repo: StoryRepository, n: int) -> Claimant:
    """The process in slot host/0 died; its next incarnation takes the slot over."""
    me = Claimant(slot="host/0", token=f"{n:032d}")
    repo.recover_abandoned(3, me)
    return me


def test_sets_a_crash_interrupted_run_alone_before_fresh_work(migrated: SettingsFactory) -> None:
    repo = _repository(migrated)
    ids = [repo.create(StoryRequest(feature=f"Feature {i}"))["id"] for i in range(5)]
    first = _restart(repo, 1)
    assert [job.id for job in repo.claim(3, 600, first)] == ids[:3]  # fresh, side by side
    second = _restart(repo, 2)  # crash: the three are suspects now
    assert [_status(repo, i) for i in ids] == ["queued"] * 5
    # Busy, this process takes nothing: not the suspects, and no fresh set either.
    assert repo.claim(16, 600, second, idle=False) == []
    [alone] = repo.claim(16, 600, second, idle=True)
    assert alone.id == ids[0] and alone.alone and alone.attempts == 2
    # Another idle process takes the next suspect, alone too.
    [other] = repo.claim(16, 600, Claimant(slot="host/1", token="b" * 32))
    assert other.id == ids[1] and other.alone
    repo.engine.dispose()


def test_crashes_in_company_never_fail_a_set(migrated: SettingsFactory) -> None:
    """Three crashes a few seconds apart, each with the oldest sets in flight: before, those
    sets were failed for good; now a crash counts only against a set that ran alone."""
    repo = _repository(migrated)
    ids = [repo.create(StoryRequest(feature=f"Feature {i}"))["id"] for i in range(20)]
    for crash in range(1, 4):
        me = _restart(repo, crash)
        claimed = repo.claim(16, 600, me)
        if not (claimed and claimed[0].alone):  # a worker fills its room with fresh work
            claimed += repo.claim(16 - len(claimed), 600, me, idle=False)
        assert claimed
    me = _restart(repo, 4)
    stories = asyncio.run(OfflineGenerator().generate(GenerationInput("Any")))
    while batch := repo.claim(16, 600, me):
        for job in batch:
            assert repo.complete(job.id, "offline", None, stories, me)
    assert [_status(repo, i) for i in ids] == ["done"] * 20
    repo.engine.dispose()


def test_a_set_that_keeps_crashing_its_process_alone_is_failed(
    migrated: SettingsFactory,
) -> None:
    repo = _repository(migrated)
    poison = repo.create(StoryRequest(feature="Crashes whoever runs it"))["id"]
    other = repo.create(StoryRequest(feature="Innocent bystander"))["id"]
    me = _restart(repo, 1)
    assert len(repo.claim(16, 600, me)) == 2  # side by side: no one is to blame yet
    for crash in range(2, 5):
        me = _restart(repo, crash)
        [job] = repo.claim(16, 600, me)
        if job.id == other:  # the bystander, alone, finishes
            stories = asyncio.run(OfflineGenerator().generate(GenerationInput("Any")))
            assert repo.complete(job.id, "offline", None, stories, me)
            [job] = repo.claim(16, 600, me)
        assert job.id == poison and job.alone
    recovery = repo.recover_abandoned(3, Claimant(slot="host/0", token="f" * 32))
    assert recovery.failed == [poison]
    found = repo.get(poison)
    assert found is not None and found["status"] == "failed"
    assert "interrupted 3 times while it ran alone" in found["error"]
    assert _status(repo, other) == "done"
    repo.engine.dispose()


def test_suspects_take_turns_so_unrelated_crashes_spread_out(migrated: SettingsFactory) -> None:
    repo = _repository(migrated)
    ids = [repo.create(StoryRequest(feature=f"Feature {i}"))["id"] for i in range(3)]
    me = _restart(repo, 1)
    repo.claim(16, 600, me)
    turns = []
    for crash in range(2, 8):  # six crashes, each while a suspect runs alone
        me = _restart(repo, crash)
        [job] = repo.claim(16, 600, me)
        turns.append(ids.index(job.id))
    assert turns == [0, 1, 2, 0, 1, 2]
    me = _restart(repo, 9)
    assert [_status(repo, i) for i in ids] == ["queued"] * 3  # two crashes alone each: not yet
    repo.engine.dispose()
