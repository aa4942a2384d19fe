"""A short-lived cache of rendered list pages, with single-flight refresh and local invalidation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

PageKey = tuple[int, int, str | None]


class ListPageCache:
    """Serves identical list requests from memory for `ttl` seconds.

    Writes made by this process (create, delete, generation finished) clear it at once, so a
    client always reads its own writes; other worker processes may lag by at most `ttl`.
    Concurrent misses for the same page share one database query.
    """

    def __init__(self, ttl: float, max_entries: int = 512) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._pages: dict[PageKey, tuple[float, bytes]] = {}
        self._pending: dict[PageKey, asyncio.Future[bytes]] = {}
        self._generation = 0

    def invalidate(self) -> None:
        """Forget every page; in-flight loads will not be stored."""
        self._pages.clear()
        self._generation += 1

    async def get(self, key: PageKey, load: Callable[[], Awaitable[bytes]]) -> bytes:
        """The cached page, or the result of `load()` (shared with concurrent callers)."""
        if self.ttl <= 0:
            return await load()
        now = time.monotonic()
        hit = self._pages.get(key)
        if hit is not None and hit[0] > now:
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
            if len(self._pages) >= self.max_entries:
                self._pages.clear()
            self._pages[key] = (now + self.ttl, body)
        return body
