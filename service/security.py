"""API-key checks, the client identity rate limits count by, and the per-client token-bucket
rate limiter."""

from __future__ import annotations

import hmac
import ipaddress
import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from service.settings import hash_api_key


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if present."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def matching_key(token: str, digests: list[str]) -> str | None:
    """The configured digest the token hashes to, or None; every digest is compared, in
    constant time, so the timing says nothing about which one (or whether one) matched."""
    digest = hash_api_key(token)
    found = None
    for known in digests:
        if hmac.compare_digest(digest, known):
            found = known
    return found


def address_key(address: str) -> str:
    """The part of a client address that names one client for rate limits: an IPv4 address
    as is, an IPv6 address by its /64 (one host or home network gets a whole /64, so the
    addresses within it cost an attacker nothing), an IPv4-mapped IPv6 address as the IPv4
    address. Anything else (a test client's name) as given."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """In-memory token buckets per client; `per_minute` is both refill rate and burst size.

    Memory is bounded by `max_clients` buckets and each call is O(1): buckets are kept in the
    order they were last touched, so those idle long enough to be full again (forgetting them
    changes nothing) are dropped from the front; when more than `max_clients` clients are
    active at once, the least recently active one is forgotten.
    """

    def __init__(self, per_minute: int, max_clients: int = 100_000) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    @property
    def enabled(self) -> bool:
        """A limit of 0 switches limiting off."""
        return self.per_minute > 0

    def wait(self, client: str, now: float | None = None) -> float:
        """Seconds until the client has a token (0 if it has one now), without taking it."""
        if not self.enabled:
            return 0.0
        bucket = self._buckets.get(client)
        if bucket is None:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens = min(float(self.per_minute), bucket.tokens + (now - bucket.updated) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def acquire(self, client: str, now: float | None = None) -> float:
        """Take one token; returns 0 when allowed, else the seconds until a token is available."""
        if not self.enabled:
            return 0.0
        now = time.monotonic() if now is None else now
        self._forget_full(now)
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= self.max_clients:
                self._buckets.popitem(last=False)
            bucket = self._buckets[client] = _Bucket(float(self.per_minute), now)
        else:
            elapsed = now - bucket.updated
            bucket.tokens = min(float(self.per_minute), bucket.tokens + elapsed * self.rate)
            bucket.updated = now
            self._buckets.move_to_end(client)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Drop the buckets untouched for a minute: they have refilled completely."""
        full_after = 60.0
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if now - oldest.updated < full_after:
                return
            self._buckets.popitem(last=False)


def retry_after_header(wait_seconds: float) -> str:
    """Whole seconds for the Retry-After header, at least 1."""
    return str(max(1, math.ceil(wait_seconds)))
