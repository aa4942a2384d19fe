"""The list-page cache: hits, expiry, invalidation, single-flight loading, and bounded memory
under reads that each choose a new key (anonymous clients choose `limit`, `offset` and `q`)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.db import make_engine
from service.list_cache import ListPageCache
from service.main import create_app
from service.repository import StoryRepository
from service.schemas import StoryRequest
from tests.service.conftest import SettingsFactory


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """The cache does not depend on the database: SQLite only here."""
    return sqlite_url


async def test_hits_until_expiry_or_invalidation() -> None:
    cache = ListPageCache(ttl=60)
    calls = 0

    async def load() -> bytes:
        nonlocal calls
        calls += 1
        return str(calls).encode()

    assert await cache.get((20, 0, None), load) == b"1"
    assert await cache.get((20, 0, None), load) == b"1"
    assert await cache.get((20, 0, "x"), load) == b"2"
    cache.invalidate()
    assert await cache.get((20, 0, None), load) == b"3"


async def test_zero_ttl_disables_caching() -> None:
    cache = ListPageCache(ttl=0)
    calls = 0

    async def load() -> bytes:
        nonlocal calls
        calls += 1
        return b"page"

    for _ in range(3):
        await cache.get((20, 0, None), load)
    assert calls == 3


async def test_concurrent_misses_share_one_load() -> None:
    cache = ListPageCache(ttl=60)
    calls = 0

    async def load() -> bytes:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return b"page"

    pages = await asyncio.gather(*(cache.get((20, 0, None), load) for _ in range(50)))
    assert pages == [b"page"] * 50
    assert calls == 1


async def test_a_load_racing_an_invalidation_is_not_stored() -> None:
    cache = ListPageCache(ttl=60)
    versions = iter([b"old", b"new"])

    async def load() -> bytes:
        await asyncio.sleep(0.02)
        return next(versions)

    first = asyncio.create_task(cache.get((20, 0, None), load))
    await asyncio.sleep(0.005)
    cache.invalidate()
    assert await first == b"old"
    assert await cache.get((20, 0, None), load) == b"new"


async def test_a_failed_load_reaches_every_waiter_and_is_not_cached() -> None:
    cache = ListPageCache(ttl=60)
    attempts = 0

    async def load() -> bytes:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        if attempts == 1:
            raise RuntimeError("database down")
        return b"page"

    results = await asyncio.gather(
        *(cache.get((20, 0, None), load) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await cache.get((20, 0, None), load) == b"page"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_many_distinct_keys_stay_within_the_entry_and_byte_bounds() -> None:
    cache = ListPageCache(ttl=60, max_entries=50, max_bytes=20_000)
    body = b"x" * 1000
    most_entries = most_bytes = 0

    async def load() -> bytes:
        return body

    for offset in range(5000):
        assert await cache.get((20, offset, None), load) == body
        most_entries = max(most_entries, len(cache))
        most_bytes = max(most_bytes, cache.size_bytes)
    assert most_entries == 20 and most_bytes == 20_000
    # The newest pages are the ones kept, and they are hits.
    calls = 0

    async def counted() -> bytes:
        nonlocal calls
        calls += 1
        return body

    await cache.get((20, 4999, None), counted)
    assert calls == 0


async def test_expired_pages_are_dropped_not_just_ignored() -> None:
    clock = FakeClock()
    cache = ListPageCache(ttl=1, max_entries=1000, max_bytes=10**9, clock=clock)

    async def load() -> bytes:
        return b"y" * 100

    for offset in range(300):
        await cache.get((20, offset, "q"), load)
    assert len(cache) == 300 and cache.size_bytes == 30_000
    clock.now += 1.5
    await cache.get((20, 0, "other"), load)
    assert len(cache) == 1 and cache.size_bytes == 100


async def test_a_page_larger_than_the_byte_bound_is_served_but_not_kept() -> None:
    cache = ListPageCache(ttl=60, max_bytes=1000)
    calls = 0

    async def load() -> bytes:
        nonlocal calls
        calls += 1
        return b"z" * 5000

    assert await cache.get((100, 0, None), load) == b"z" * 5000
    assert await cache.get((100, 0, None), load) == b"z" * 5000
    assert calls == 2 and len(cache) == 0 and cache.size_bytes == 0


def _rss_bytes() -> int:
    """This process's resident set size, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_thousands_of_anonymous_reads_with_distinct_keys_keep_memory_flat(
    migrated: SettingsFactory,
) -> None:
    """2,000 anonymous list reads, each with its own limit/offset/q, over 300 story sets of
    about 16 KB each (pages of up to 1.6 MB): the cache stays within its byte bound and the
    process's RSS grows by far less than the pages read (about 2 GB in all)."""
    settings = migrated(list_cache_seconds=60, list_cache_max_bytes=4 * 1024 * 1024)
    engine = make_engine(settings)
    repository = StoryRepository(engine, None)  # type: ignore[arg-type]
    for n in range(300):
        repository.create(
            StoryRequest(feature=f"Feature {n} " + "\u00e9" * 3980, context="\u00e8" * 4000)
        )
    engine.dispose()
    with TestClient(create_app(settings)) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        keys = itertools.product(range(60, 101, 4), range(0, 200), ["", "feature", "Feature"])
        before = None
        largest = 0
        for n, (limit, offset, q) in enumerate(itertools.islice(keys, 2000)):
            response = client.get("/api/stories", params={"limit": limit, "offset": offset, "q": q})
            assert response.status_code == 200
            largest = max(largest, runtime.list_cache.size_bytes)
            if n == 100:  # allocator and caches warmed up
                before = _rss_bytes()
        assert before is not None
        grown = _rss_bytes() - before
    assert largest <= 4 * 1024 * 1024
    assert grown < 150 * 1024 * 1024, f"RSS grew by {grown // 2**20} MiB"
