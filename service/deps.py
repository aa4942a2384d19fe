"""FastAPI dependencies: the app runtime, API-key checks and rate limits."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.runtime import Runtime
from service.security import RateLimiter, key_is_valid, retry_after_header
from service.settings import hash_api_key

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


def _client_id(request: Request, token: str | None) -> str:
    """Rate-limit identity: the API key's digest when one is given, else the client address."""
    if token:
        return "key:" + hash_api_key(token)[:16]
    return "ip:" + (request.client.host if request.client else "unknown")


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


async def require_writer(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Write endpoints: a valid bearer API key when keys are configured, then the write limit."""
    token = credentials.credentials if credentials else None
    digests = runtime.settings.api_keys
    if digests:
        if token is None:
            raise HTTPException(
                401, "missing bearer API key", headers={"WWW-Authenticate": "Bearer"}
            )
        if not key_is_valid(token, digests):
            raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
    _check_rate(runtime.write_limiter, _client_id(request, token), runtime, "write")


def limit_reader(request: Request, runtime: Runtime) -> None:
    """Read endpoints: the per-client read limit (called inline: reads are the hot path)."""
    if runtime.read_limiter.enabled:
        token = None
        auth = request.headers.get("authorization")
        if auth and auth.lower().startswith("bearer "):
            token = auth[7:].strip() or None
        _check_rate(runtime.read_limiter, _client_id(request, token), runtime, "read")
