"""Exception handlers: how errors become HTTP answers (422, 405, 503), all in one place."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service.db import is_unavailable, unavailable_reason

log = logging.getLogger("service.error")
DATABASE_UNAVAILABLE = "database is unavailable; retry later"
RETRY_AFTER_SECONDS = 2
# The methods a 405 looks for at the path; HEAD comes with GET.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


def encodable(value: Any) -> Any:
    """`value` with every lone surrogate (what a JSON `\\ud800` escape decodes to) replaced by
    U+FFFD, in keys too: such text cannot be encoded as UTF-8, so echoing it would fail."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {encodable(key): encodable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [encodable(item) for item in value]
    return value


async def invalid_request(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 with the errors and the input they echo, made safe to encode first."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": encodable(jsonable_encoder(exc.errors()))}, status_code=422)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers at this request's path.

    Starlette answers 405 from the first route whose path matches, with that route's methods
    only; a path served by several routes (GET and POST on /api/stories) needs them all.
    """
    scope = request.scope
    allowed = []
    for method in HTTP_METHODS:
        # A fresh scope: matching writes routing state into the scope it is given.
        probe = {
            "type": "http",
            "method": method,
            "path": scope["path"],
            "root_path": scope.get("root_path", ""),
            "headers": scope.get("headers", []),
        }
        if any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


async def http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's answer to an HTTPException; a 405 lists every method of the path in Allow."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        methods = allowed_methods(request)
        if methods:
            headers = {**(exc.headers or {}), "Allow": ", ".join(methods)}
            exc = StarletteHTTPException(405, exc.detail, headers=headers)
    return await http_exception_handler(request, exc)


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


def add_error_handlers(app: FastAPI) -> None:
    """Install the handlers on the app."""
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(sa_exc.DBAPIError, database_unavailable)
    app.add_exception_handler(sa_exc.TimeoutError, database_unavailable)
