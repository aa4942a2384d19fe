"""A short-lived cache of rendered list pages, with single-flight refresh and local invalidation."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

PageKey = tuple[int, int, str | None]

DEFAULT_MAX_ENTRIES = 256
DEFAULT_MAX_BYTES = 16 * 1024 * 1024


class ListPageCache:
    """Serves identical list requests from memory for `ttl` seconds.

    Writes made by this process (create, delete, generation finished) clear it at once, so a
    client always reads its own writes; other worker processes may lag by at most `ttl`.
    Concurrent misses for the same page share one database query.

    Memory is bounded by `max_entries` pages and `max_bytes` of page bodies: anonymous clients
    choose the key (`limit`, `offset`, `q`), so each distinct read could otherwise keep a page
    of up to 100 full-size story sets alive. Every entry lives exactly `ttl` from its insertion,
    so insertion order is expiry order: expired pages are dropped from the front as new ones
    come in, and when a bound is reached the oldest pages go first, each step O(1).
    """

    def __init__(
        self,
        ttl: float,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._pages: OrderedDict[PageKey, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._pending: dict[PageKey, asyncio.Future[bytes]] = {}
        self._generation = 0

    def __len__(self) -> int:
        return len(self._pages)

    @property
    def size_bytes(self) -> int:
        """Bytes of page bodies held now."""
        return self._bytes

    def invalidate(self) -> None:
        """Forget every page; in-flight loads will not be stored."""
        self._pages.clear()
        self._bytes = 0
        self._generation += 1

    async def get(self, key: PageKey, load: Callable[[], Awaitable[bytes]]) -> bytes:
        """The cached page, or the result of `load()` (shared with concurrent callers)."""
        if self.ttl <= 0:
            return await load()
        now = self._clock()
        self._drop_expired(now)
        hit = self._pages.get(key)
        if hit is not None:
            return hit[1]
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        generation = self._generation
        try:
            body = await load()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # mark retrieved: waiters, if any, get it re-raised
            raise
        finally:
            self._pending.pop(key, None)
        future.set_result(body)
        if generation == self._generation:
            self._store(key, body, self._clock())
        return body

    def _drop_expired(self, now: float) -> None:
        """Drop the pages whose time is up; they are all at the front."""
        while self._pages:
            key, (expires, body) = next(iter(self._pages.items()))
            if expires > now:
                return
            del self._pages[key]
            self._bytes -= len(body)

    def _store(self, key: PageKey, body: bytes, now: float) -> None:
        """Keep `body` until `now + ttl`, making room by dropping the oldest pages."""
        if len(body) > self.max_bytes or self.max_entries <= 0:
            return
        old = self._pages.pop(key, None)
        if old is not None:
            self._bytes -= len(old[1])
        while self._pages and (
            len(self._pages) >= self.max_entries or self._bytes + len(body) > self.max_bytes
        ):
            _, (_, dropped) = self._pages.popitem(last=False)
            self._bytes -= len(dropped)
        self._pages[key] = (now + self.ttl, body)
        self._bytes += len(body)
