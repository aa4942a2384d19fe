"""FastAPI dependencies: the app runtime, API-key checks and rate limits."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.runtime import Runtime
from service.security import (
    RateLimiter,
    address_key,
    bearer_token,
    matching_key,
    retry_after_header,
)

bearer = HTTPBearer(auto_error=False, description="An API key from API_KEYS.")


def runtime_of(request: Request) -> Runtime:
    """The runtime the lifespan built for this app."""
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise HTTPException(503, "service is starting")
    return runtime


async def get_runtime(request: Request) -> Runtime:
    """Dependency form of `runtime_of`."""
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def client_address(request: Request) -> str:
    """The client's address. Behind a proxy, uvicorn has already replaced the peer with the
    X-Forwarded-For entry the proxy added, if (and only if) the peer is in FORWARDED_ALLOW_IPS;
    a client cannot choose its own."""
    return request.client.host if request.client else "unknown"


def _rate_identity(request: Request, key_digest: str | None) -> str:
    """Rate-limit identity: a verified API key's digest, else the client address. An
    unverified token never names a bucket: a fresh one per request would get a fresh bucket."""
    if key_digest is not None:
        return "key:" + key_digest[:16]
    return "ip:" + address_key(client_address(request))


def _check_rate(limiter: RateLimiter, client: str, runtime: Runtime, scope: str) -> None:
    """Raise 429 with Retry-After when the client's bucket is empty."""
    wait = limiter.acquire(client)
    if wait > 0:
        runtime.metrics.rate_limited.labels(scope).inc()
        raise HTTPException(
            429,
            f"rate limit of {limiter.per_minute} requests per minute exceeded; retry later",
            headers={"Retry-After": retry_after_header(wait)},
        )


def _verified_key(request: Request, runtime: Runtime, token: str | None) -> str | None:
    """The digest of the configured key the bearer token matches; 401 without one.

    Wrong keys are counted per client address: past AUTH_FAILURES_PER_MINUTE, that address
    gets 429 for every key, right or wrong, until its budget refills, so guessing cannot go
    faster than the limit (a 429 for wrong keys only would tell a right guess apart).
    """
    address = "ip:" + address_key(client_address(request))
    failures = runtime.auth_failure_limiter
    wait = failures.wait(address)
    if wait > 0:
        runtime.metrics.rate_limited.labels("auth").inc()
        raise HTTPException(
            429,
            f"too many failed API-key checks from this address (limit {failures.per_minute} "
            "per minute); retry later",
            headers={"Retry-After": retry_after_header(wait)},
        )
    if token is None:
        raise HTTPException(401, "missing bearer API key", headers={"WWW-Authenticate": "Bearer"})
    digest = matching_key(token, runtime.settings.api_keys)
    if digest is None:
        failures.acquire(address)
        raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
    return digest


async def require_writer(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Write endpoints: a valid bearer API key when keys are configured, then the write limit."""
    token = credentials.credentials if credentials else None
    digest = _verified_key(request, runtime, token) if runtime.settings.api_keys else None
    _check_rate(runtime.write_limiter, _rate_identity(request, digest), runtime, "write")


def limit_reader(request: Request, runtime: Runtime) -> None:
    """Read endpoints: the per-client read limit (called inline: reads are the hot path).

    Reads need no key; a valid one gets the key's own bucket, anything else the address's.
    """
    if runtime.read_limiter.enabled:
        token = bearer_token(request.headers.get("authorization"))
        digests = runtime.settings.api_keys
        digest = matching_key(token, digests) if token and digests else None
        _check_rate(runtime.read_limiter, _rate_identity(request, digest), runtime, "read")


def limit_operations(request: Request, runtime: Runtime) -> None:
    """/readyz, /metrics, /openapi.json and /docs: a generous per-address budget
    (OPS_RATE_LIMIT_PER_MINUTE), far above what probes and scrapes use, that stops a client from
    turning them into a way to load the database or the CPU. /healthz stays unlimited: a
    liveness probe that met a 429 would restart the pod."""
    if runtime.ops_limiter.enabled:
        identity = "ip:" + address_key(client_address(request))
        _check_rate(runtime.ops_limiter, identity, runtime, "ops")


async def operations_limit(request: Request, runtime: RuntimeDep) -> None:
    """Dependency form of `limit_operations`."""
    limit_operations(request, runtime)
