"""Exception handlers: how errors become HTTP answers (422, 405, 503), all in one place."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service.db import is_storage_full, is_unavailable, unavailable_reason

log = logging.getLogger("service.error")
DATABASE_UNAVAILABLE = "database is unavailable; retry later"
STORAGE_FULL = "database storage is full; retry later"
RETRY_AFTER_SECONDS = 2
# Freeing space takes an operator: no point in retrying every two seconds.
STORAGE_FULL_RETRY_AFTER_SECONDS = 30
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


# A 422 names at most this many errors, and echoes at most this much of any value: the body is
# up to MAX_BODY_BYTES of the client's choosing, and echoing all of it (one error per unknown
# key, say) once made a 60 KB body into a 593 KB answer.
MAX_ERRORS_SHOWN = 10
MAX_ECHO_CHARACTERS = 80
MAX_MESSAGE_CHARACTERS = 300


def shorten(text: str, limit: int = MAX_ECHO_CHARACTERS) -> str:
    """`text` made encodable and cut to `limit` characters, with an ellipsis when cut."""
    text = encodable(text[: limit + 1])
    return text if len(text) <= limit else text[:limit] + "\u2026"


def excerpt(value: Any) -> Any:
    """A small excerpt of an input value that JSON can always encode: short scalars as they
    are, long text shortened, bytes decoded with U+FFFD, `NaN` and infinities as their JSON
    spelling in a string, containers as a shortened string of their JSON text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else shorten(str(value))
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, bytes | bytearray):
        return shorten(bytes(value[: 4 * MAX_ECHO_CHARACTERS]).decode("utf-8", "replace"))
    if isinstance(value, str):
        return shorten(value)
    try:
        text = json.dumps(value, default=repr, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(value)
    return shorten(text)


def validation_errors(errors: Any) -> list[dict[str, Any]]:
    """FastAPI's error list, bounded: at most MAX_ERRORS_SHOWN errors, each location part,
    message, context value and echoed input cut to a small excerpt."""
    errors = list(errors)
    shown: list[dict[str, Any]] = []
    for error in errors[:MAX_ERRORS_SHOWN]:
        item: dict[str, Any] = {
            "type": shorten(str(error.get("type", "")), 64),
            "loc": [
                part if isinstance(part, int) else shorten(str(part), 64)
                for part in error.get("loc", ())[:8]
            ],
            "msg": shorten(str(error.get("msg", "")), MAX_MESSAGE_CHARACTERS),
        }
        if "input" in error:
            item["input"] = excerpt(error["input"])
        if isinstance(error.get("ctx"), dict):
            item["ctx"] = {shorten(str(k), 64): excerpt(v) for k, v in error["ctx"].items()}
        shown.append(item)
    hidden = len(errors) - len(shown)
    if hidden > 0:
        shown.append(
            {
                "type": "too_many_errors",
                "loc": shown[-1]["loc"][:1],
                "msg": f"{hidden} more errors not shown",
            }
        )
    return shown


async def invalid_request(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 with the errors and a bounded excerpt of the input they echo, always
    encodable (whatever the body held: lone surrogates, NaN, bytes of any content type)."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": validation_errors(exc.errors())}, status_code=422)


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
    if "GET" in allowed and "HEAD" not in allowed:
        allowed.insert(allowed.index("GET") + 1, "HEAD")  # middleware.HeadAsGetMiddleware
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
    detail, retry_after = DATABASE_UNAVAILABLE, RETRY_AFTER_SECONDS
    if is_storage_full(exc):
        detail, retry_after = STORAGE_FULL, STORAGE_FULL_RETRY_AFTER_SECONDS
        runtime = getattr(request.app.state, "runtime", None)
        if runtime is not None:
            runtime.storage.raise_alarm()  # readiness reports it (routes.ops)
    return JSONResponse(
        {"detail": detail}, status_code=503, headers={"Retry-After": str(retry_after)}
    )


def add_error_handlers(app: FastAPI) -> None:
    """Install the handlers on the app."""
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(sa_exc.DBAPIError, database_unavailable)
    app.add_exception_handler(sa_exc.TimeoutError, database_unavailable)
