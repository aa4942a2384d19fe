"""The ASGI app: `create_app()` factory and the module-level `app` for uvicorn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

from service.db import is_unavailable, unavailable_reason
from service.logs import configure_logging
from service.middleware import BodySizeLimitMiddleware, LazyCORSMiddleware, RequestContextMiddleware
from service.routes import ops, stories
from service.settings import Settings, get_settings

log = logging.getLogger("service.error")
DATABASE_UNAVAILABLE = "database is unavailable; retry later"
RETRY_AFTER_SECONDS = 2


async def database_unavailable(request: Request, exc: Exception) -> Response:
    """A database that cannot serve now is a 503 the client may retry, not a 500 with a
    traceback; any other database error is left to the catch-all (a bug, 500)."""
    if not is_unavailable(exc):
        raise exc
    log.warning(
        "database unavailable",
        extra={"path": request.url.path, "error": unavailable_reason(exc)},
    )
    return JSONResponse(
        {"detail": DATABASE_UNAVAILABLE},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; settings are read at startup, from `settings` or the environment.

    With settings whose role is "worker", the app serves only the operations endpoints
    (health, readiness, metrics) beside the generation queue.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from service.runtime import start_runtime

        resolved = settings or get_settings()
        configure_logging(resolved.log_level)
        app.state.runtime = await start_runtime(resolved)
        try:
            yield
        finally:
            await app.state.runtime.stop()
            del app.state.runtime

    app = FastAPI(
        title="autodevhub story service",
        version="0.1.0",
        description="Turns feature descriptions into user stories with acceptance criteria.",
        lifespan=lifespan,
    )
    if settings is None or settings.process_role != "worker":
        app.include_router(stories.router)
    app.include_router(ops.router)
    app.add_exception_handler(sa_exc.DBAPIError, database_unavailable)
    app.add_exception_handler(sa_exc.TimeoutError, database_unavailable)
    # Added innermost first: request context wraps CORS, which wraps the body limit.
    app.add_middleware(BodySizeLimitMiddleware)
    app.add_middleware(LazyCORSMiddleware)
    app.add_middleware(RequestContextMiddleware)
    return app


app = create_app()
