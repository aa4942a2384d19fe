"""The list-page cache: hits, expiry, invalidation and single-flight loading."""

from __future__ import annotations

import asyncio

from service.list_cache import ListPageCache


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
