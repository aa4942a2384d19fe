"""Pure-ASGI middleware: request id, access log, metrics and security headers; HEAD as GET
without a body; body size limit; lazy CORS."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from fastapi import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.logs import new_request_id, request_id_var

access_log = logging.getLogger("service.access")
error_log = logging.getLogger("service.error")
# Every answer forbids loading anything (scripts included) unless it sets its own policy: the
# API serves JSON, and the one HTML page (routes.docs) allows only its inline style.
DEFAULT_SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
]


def _header(scope: Scope, name: bytes) -> str | None:
    """One request header by lower-case name."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _runtime(scope: Scope) -> Any:
    """The app's runtime (settings, metrics, ...) set up by the lifespan; None before that."""
    app = scope.get("app")
    return getattr(app.state, "runtime", None) if app is not None else None


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: list[Any]) -> None:
    """Send a complete JSON response."""
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestContextMiddleware:
    """Assigns a request id, writes one JSON access-log line, records request metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id(_header(scope, b"x-request-id"))
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False
        id_header = (b"x-request-id", request_id.encode())

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = [*message.get("headers", []), id_header]
                present = {bytes(name).lower() for name, _ in headers}
                headers += [h for h in DEFAULT_SECURITY_HEADERS if h[0] not in present]
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            error_log.exception("unhandled error", extra={"path": scope.get("path")})
            if not response_started:
                # Through the wrapper: a 500 carries the request id and security headers too.
                await _send_json(send_wrapper, 500, {"detail": "internal server error"}, [])
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            route_name = getattr(route, "path", None) or "unmatched"
            runtime = _runtime(scope)
            client = (scope.get("client") or ("-",))[0]
            if runtime is not None:
                runtime.metrics.observe_request(
                    scope["method"], route_name, status, elapsed, client
                )
                if runtime.settings.access_log:
                    access_log.info(
                        "request",
                        extra={
                            "method": scope["method"],
                            "path": scope.get("path"),
                            "route": route_name,
                            "status": status,
                            "duration_ms": round(elapsed * 1000, 2),
                            "client": client,
                        },
                    )
            request_id_var.reset(token)


class HeadAsGetMiddleware:
    """Answers HEAD like GET, without the body (RFC 9110 section 9.3.2): FastAPI's GET routes
    do not take HEAD, which was a 405.

    The app sees a copy of the scope with GET; the server's own scope keeps HEAD, so uvicorn
    also knows to send no body. The route the app matched is copied back for the access log
    and the metrics.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        as_get = {**scope, "method": "GET"}

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(as_get, receive, without_body)
        finally:
            if "route" in as_get:
                scope["route"] = as_get["route"]


class BodySizeLimitMiddleware:
    """Answers 413 for bodies over MAX_BODY_BYTES, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = _runtime(scope)
        if scope["type"] != "http" or runtime is None:
            await self.app(scope, receive, send)
            return
        limit: int = runtime.settings.max_body_bytes
        detail = {"detail": f"request body is larger than the limit of {limit} bytes"}
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_json(send, 413, detail, [(b"connection", b"close")])
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI passes HTTPException through its body parsing; others become 400.
                    raise HTTPException(413, detail["detail"])
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except HTTPException as exc:
            if exc.status_code != 413:
                raise
            if not response_started:
                await _send_json(send, 413, detail, [(b"connection", b"close")])


class LazyCORSMiddleware:
    """CORS for the configured origins only; built on first request because settings are lazy."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._cors: ASGIApp | None = None
        self._origins: list[str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = _runtime(scope)
        origins = list(runtime.settings.cors_origins) if runtime is not None else []
        if not origins:
            await self.app(scope, receive, send)
            return
        if self._cors is None or self._origins != origins:
            self._origins = origins
            self._cors = CORSMiddleware(
                self.app,
                allow_origins=origins,
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                expose_headers=["Location", "Retry-After", "X-Request-ID"],
                max_age=600,
            )
        await self._cors(scope, receive, send)
