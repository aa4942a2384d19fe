"""The ASGI app: `create_app()` factory and the module-level `app` for uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from service.errors import add_error_handlers
from service.logs import configure_logging
from service.middleware import (
    BodySizeLimitMiddleware,
    HeadAsGetMiddleware,
    LazyCORSMiddleware,
    RequestContextMiddleware,
)
from service.routes import docs, ops, stories
from service.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; settings are read at startup, from `settings` or the environment.

    With settings whose role is "worker", the app serves only the operations endpoints
    (health, readiness, metrics) beside the generation queue.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        from service.runtime import start_runtime
        from service.server import LIMITS_STATE, ConnectionLimits

        resolved = settings or get_settings()
        configure_logging(resolved.log_level)
        app.state.runtime = await start_runtime(resolved)
        try:
            # Lifespan state reaches uvicorn's connections: service.server reads its limits.
            yield {LIMITS_STATE: ConnectionLimits.from_settings(resolved)}
        finally:
            await app.state.runtime.stop()
            del app.state.runtime

    app = FastAPI(
        title="autodevhub story service",
        version="0.1.0",
        description="Turns feature descriptions into user stories with acceptance criteria.",
        lifespan=lifespan,
        # Served by routes.docs, only where DOCS_ENABLED allows and with no third-party script.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    if settings is None or settings.process_role != "worker":
        app.include_router(stories.router)
        app.include_router(docs.router)
    app.include_router(ops.router)
    add_error_handlers(app)
    # Added innermost first: request context wraps CORS, which wraps the body limit, which
    # wraps HEAD-as-GET.
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(BodySizeLimitMiddleware)
    app.add_middleware(LazyCORSMiddleware)
    app.add_middleware(RequestContextMiddleware)
    return app


app = create_app()
