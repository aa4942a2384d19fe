"""How `python -m service` runs uvicorn, and the bounds it puts on every connection.

uvicorn's HTTP protocol (httptools) reads a request head of any size for as long as the client
takes, keeps a connection that never sends a request open for ever, and waits for a body
indefinitely: one client could stall a process with a 128 MiB header or hold connections with
a byte every few seconds. `GuardedHttpToolsProtocol` adds the bounds nginx has by default:

- the request head (request line and headers) may take MAX_HEADER_BYTES (else 431) and
  HTTP_HEADER_TIMEOUT_SECONDS from the connection's start or the previous answer (else 408, or
  a plain close if nothing was sent);
- a body must arrive whole within HTTP_BODY_TIMEOUT_SECONDS (else 408);
- an idle kept-alive connection is closed after KEEP_ALIVE_SECONDS (uvicorn's own timer);
- beyond MAX_CONNECTIONS open connections, requests get 503 with Retry-After, except the
  probes (/healthz, /readyz), so that an overload is not taken for a dead process; beyond
  twice as many, new connections are closed at once, which bounds memory.

The limits travel in the app's lifespan state (`LIMITS_STATE`), which uvicorn hands to every
connection: the same settings object configures the app and its connections, in each worker
process. Every answer the protocol writes itself carries the security headers.
"""

from __future__ import annotations

import asyncio
import http
from dataclasses import dataclass
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from service.middleware import DEFAULT_SECURITY_HEADERS as SECURITY_HEADERS
from service.settings import Settings

LIMITS_STATE = "connection_limits"
PROBE_PATHS = (b"/healthz", b"/readyz")
OVERLOAD_RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class ConnectionLimits:
    """The bounds on one connection and on how many there are (see the module's docstring)."""

    max_header_bytes: int = 16 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        """The limits the settings ask for."""
        return cls(
            max_header_bytes=settings.max_header_bytes,
            header_timeout=settings.http_header_timeout_seconds,
            body_timeout=settings.http_body_timeout_seconds,
            max_connections=settings.max_connections,
        )


DEFAULT_LIMITS = ConnectionLimits()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of `uvicorn.run` (or `uvicorn.Config`) for these settings."""
    return {
        "host": settings.host,
        "port": settings.port,
        "http": GuardedHttpToolsProtocol,
        "ws": "none",  # the service has no WebSocket route
        "timeout_keep_alive": settings.keep_alive_seconds,
        "log_config": None,
        "access_log": False,
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "server_header": False,
    }


async def _overloaded(scope: Any, receive: Any, send: Any) -> None:
    """The answer to a request beyond MAX_CONNECTIONS."""
    body = b"too many connections; retry later"
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(OVERLOAD_RETRY_AFTER_SECONDS).encode()),
                (b"connection", b"close"),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _HeadTooLarge(Exception):
    """Stops the parser after a 431 (httptools reports it as a parser error, whose 400 is not
    sent: the connection is closing already)."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounds on the head, the body and idle connections."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._app = self.app
        self._head_bytes = 0  # as read, while the head is incomplete
        self._head_size = 0  # as parsed: request target and headers
        self._reading_head = True
        self._deadline: asyncio.TimerHandle | None = None

    @property
    def limits(self) -> ConnectionLimits:
        """The limits of the app this server runs (defaults before its lifespan has run)."""
        limits = self.app_state.get(LIMITS_STATE)
        return limits if isinstance(limits, ConnectionLimits) else DEFAULT_LIMITS

    # -- timers ------------------------------------------------------------------------------

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._head_bytes:
            self._refuse(408, "request head not received in time")
        else:
            self.transport.close()  # nothing asked: just an idle connection

    def _body_too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_started:
            self._refuse(408, "request body not received in time")
        else:
            self.transport.close()

    # -- the server's own answers ------------------------------------------------------------

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` with a short text and the security headers, and close (unless an
        answer is on its way already)."""
        if self.transport.is_closing():
            return
        body = message.encode("ascii")
        head = [
            f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n".encode("ascii"),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n",
            *(name + b": " + value + b"\r\n" for name, value in SECURITY_HEADERS),
            b"\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, with the security headers."""
        self._refuse(400, msg)

    # -- protocol events ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request head; close at once beyond twice
        MAX_CONNECTIONS."""
        super().connection_made(transport)
        if len(self.connections) > 2 * self.limits.max_connections:
            self.transport.close()
            return
        self._arm(self.limits.header_timeout, self._head_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clocks."""
        self._disarm()
        super().connection_lost(exc)

    def _head_too_large(self) -> None:
        limit = self.limits.max_header_bytes
        self._refuse(431, f"request head is larger than the limit of {limit} bytes")

    def data_received(self, data: bytes) -> None:
        """Count the bytes of an incomplete head: past MAX_HEADER_BYTES, refuse it before
        reading on (the parser would keep all of it)."""
        if self._reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._reading_head and self._head_bytes > self.limits.max_header_bytes:
            self._head_too_large()

    def on_message_begin(self) -> None:
        """A request starts: measure its head from here."""
        self._head_size = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        """Measure the request target."""
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Measure each header as parsed (name, value, separator and line end)."""
        self._head_size += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """The head is in: refuse it past MAX_HEADER_BYTES (it may have come in one read),
        stop its clock, start the body's, and answer 503 beyond MAX_CONNECTIONS (except the
        probes)."""
        self._reading_head = False
        self._head_bytes = 0
        if self._head_size > self.limits.max_header_bytes:
            self._head_too_large()
            raise _HeadTooLarge
        path = self.url.split(b"?", 1)[0]
        busy = len(self.connections) > self.limits.max_connections
        self.app = _overloaded if busy and path not in PROBE_PATHS else self._app
        self._arm(self.limits.body_timeout, self._body_too_slow)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The body is in: stop its clock; what comes next is the next request's head (whose
        clock starts now if the app answered before reading the whole body)."""
        self._disarm()
        self._reading_head = True
        super().on_message_complete()
        answered = self.cycle is not None and self.cycle.response_complete
        if answered and not self.pipeline and not self.transport.is_closing():
            self._arm(self.limits.header_timeout, self._head_too_slow)

    def on_response_complete(self) -> None:
        """The answer is out: the next head has HTTP_HEADER_TIMEOUT_SECONDS from now (an idle
        connection is closed sooner, by uvicorn's keep-alive timer)."""
        waiting = not self.pipeline
        super().on_response_complete()
        if waiting and not self.transport.is_closing():
            self._arm(self.limits.header_timeout, self._head_too_slow)
