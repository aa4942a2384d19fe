"""HTTP requests of the smoke checks, with httpx: each request ends by a wall-clock deadline and
reads at most `max_bytes` of an answer, whatever the server does.

httpx's timeouts bound each read, and each new byte resets them: a server that sends one byte
every two seconds would hold a request forever. Here every socket read and write is given the
time left before the request's deadline, so a request ends by it however the server drips,
stalls or streams. Every request goes through `HttpClient.request`, which logs it (with the URL
as the caller may show it: without its secrets).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

    import httpcore
    import httpx

log = logging.getLogger("autodevhub.http")

MAX_BODY_BYTES = 4 * 1024 * 1024
READ_TIMEOUT_SECONDS = 10.0  # for any one read or connect, as before the deadline existed


class RequestFailed(Exception):
    """A request got no complete answer: the connection failed, the deadline came first, the
    body was too large, or the request could not be sent. `settling` failures (a refused or
    dropped connection) are what a release still starting gives, and are retried."""

    def __init__(self, message: str, *, settling: bool = False, unresolved: bool = False) -> None:
        super().__init__(message)
        self.settling = settling
        self.unresolved = unresolved  # the host name does not resolve: no rollout fixes that


# What resolvers say when a name does not resolve (glibc, musl, macOS), in lower case.
_RESOLVER_WORDS = (
    "name or service not known",
    "nodename nor servname",
    "temporary failure in name resolution",
    "no address associated",
)


def _unresolved(exc: BaseException) -> bool:
    """Whether a connection error is a host name that does not resolve (DNS)."""
    import socket

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return True
        text = str(seen).lower()
        if any(words in text for words in _RESOLVER_WORDS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass(frozen=True)
class Answer:
    """A complete answer: status, headers and the whole body (at most `max_bytes`)."""

    status_code: int
    headers: dict[str, str]
    content: bytes
    encoding: str = "utf-8"
    seconds: float = 0.0

    @property
    def text(self) -> str:
        """The body as text, undecodable bytes replaced."""
        return self.content.decode(self.encoding, errors="replace")

    def json(self) -> object:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.text)


class HttpClient:
    """One connection pool for a run of requests, each bounded by its own deadline."""

    def __init__(self, max_bytes: int = MAX_BODY_BYTES) -> None:
        import httpx

        self.max_bytes = max_bytes
        self._sockets = _DeadlineSockets()
        self._client = httpx.Client(
            transport=_transport(self._sockets),
            timeout=READ_TIMEOUT_SECONDS,
            follow_redirects=False,
        )

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection."""
        self._client.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        deadline: float,
        headers: Mapping[str, str] | None = None,
        json_body: object = None,
        content: str | None = None,
        shown: str | None = None,
    ) -> Answer:
        """Send one request and read its whole answer by `deadline` (time.monotonic()); raises
        RequestFailed. `shown` is the URL as messages and the log may show it."""
        import httpcore
        import httpx

        network_errors: tuple[type[Exception], ...] = (httpx.HTTPError, *_httpcore_errors())
        shown = shown or url
        log.info("http: %s %s", method, shown)
        _check_headers(headers or {})
        started = time.monotonic()
        received = 0
        try:
            with self._sockets.until(deadline):
                request = self._client.build_request(
                    method, url, headers=dict(headers or {}), json=json_body, content=content
                )
                response = self._client.send(request, stream=True)
                try:
                    chunks = []
                    for chunk in response.iter_bytes():
                        received += len(chunk)
                        if received > self.max_bytes:
                            raise RequestFailed(
                                f"the answer's body exceeded {_size(self.max_bytes)}; the check "
                                f"stops reading there (status {response.status_code})"
                            )
                        chunks.append(chunk)
                        if time.monotonic() > deadline:
                            raise _DeadlinePassed()
                finally:
                    response.close()
        except (_DeadlinePassed, httpx.TimeoutException, httpcore.TimeoutException) as exc:
            if time.monotonic() < deadline and not isinstance(exc, _DeadlinePassed):
                raise RequestFailed(f"{type(exc).__name__}: {exc}", settling=True) from None
            raise RequestFailed(
                f"no complete answer within the deadline ({time.monotonic() - started:.1f}s, "
                f"{received} bytes of body read): the server answers too slowly or a little "
                "at a time"
            ) from None
        except httpx.InvalidURL as exc:
            raise RequestFailed(f"not a valid URL: {exc}") from None
        except network_errors as exc:
            if _unresolved(exc):
                host = httpx.URL(url).host
                raise RequestFailed(
                    f"the host name {host!r} does not resolve ({exc}): this runner cannot reach it",
                    unresolved=True,
                ) from None
            # The message of a connection error says what happened (refused, reset, closed).
            raise RequestFailed(f"{type(exc).__name__}: {exc}", settling=True) from None
        seconds = time.monotonic() - started
        log.info("http: %s %s answered %s in %.3fs", method, shown, response.status_code, seconds)
        return Answer(
            response.status_code,
            dict(response.headers),
            b"".join(chunks),
            response.encoding or "utf-8",
            seconds,
        )


def _size(count: int) -> str:
    mib = count / (1024 * 1024)
    return f"{count} bytes" + (f" ({mib:g} MiB)" if count >= 1024 * 1024 else "")


class _DeadlinePassed(Exception):
    pass


def _httpcore_errors() -> tuple[type[Exception], ...]:
    import httpcore

    return (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol)


def _check_headers(headers: Mapping[str, str]) -> None:
    """HTTP header values are printable ASCII; the value itself never goes into the message,
    as it is often a credential."""
    for name, value in headers.items():
        if not name.isascii() or not name.isprintable() or not name or " " in name:
            raise RequestFailed(f"the header name {name.encode()!r} is not a valid HTTP header")
        if not value.isascii() or not value.isprintable():
            raise RequestFailed(
                f"the value of header {name} holds a character HTTP does not allow there (a "
                "line break, a control character or a non-ASCII character); the value is not "
                "shown"
            )


class _DeadlineSockets:
    """httpcore's sockets (its sync network layer), with every connect, read and write bounded
    by the time left before the current request's deadline (kept per thread)."""

    def __init__(self) -> None:
        import httpcore

        self._inner = httpcore.SyncBackend()
        self._local = threading.local()

    def until(self, deadline: float) -> _Until:
        """Bound the requests made in this block by `deadline`."""
        return _Until(self._local, deadline)

    def left(self, timeout: float | None, failure: type[Exception]) -> float:
        """`timeout` cut to the time left before the deadline; `failure` when none is left."""
        deadline = getattr(self._local, "deadline", math.inf)
        left = deadline - time.monotonic()
        if left <= 0:
            raise failure("the request's deadline passed")
        return left if timeout is None else min(timeout, left)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> _DeadlineStream:
        import httpcore

        stream = self._inner.connect_tcp(
            host,
            port,
            self.left(timeout, httpcore.ConnectTimeout),
            local_address,
            socket_options,
        )
        return _DeadlineStream(stream, self)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> _DeadlineStream:
        import httpcore

        stream = self._inner.connect_unix_socket(
            path, self.left(timeout, httpcore.ConnectTimeout), socket_options
        )
        return _DeadlineStream(stream, self)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _Until:
    def __init__(self, local: threading.local, deadline: float) -> None:
        self._local = local
        self._deadline = deadline

    def __enter__(self) -> None:
        self._local.deadline = self._deadline

    def __exit__(self, *_exc: object) -> None:
        self._local.deadline = math.inf


class _DeadlineStream:
    """A connection whose every read and write gets at most the time left."""

    def __init__(self, inner: httpcore.NetworkStream, sockets: _DeadlineSockets) -> None:
        self._inner = inner
        self._sockets = sockets

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        import httpcore

        data: bytes = self._inner.read(max_bytes, self._sockets.left(timeout, httpcore.ReadTimeout))
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        import httpcore

        self._inner.write(buffer, self._sockets.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> _DeadlineStream:
        import httpcore

        left = self._sockets.left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, left), self._sockets
        )

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


def _transport(deadline_sockets: _DeadlineSockets) -> httpx.BaseTransport:
    """An httpx transport over an httpcore pool that opens its connections through
    `deadline_sockets`."""
    import httpcore
    import httpx

    sockets: Any = deadline_sockets  # duck-typed httpcore.NetworkBackend, imported lazily

    class Body(httpx.SyncByteStream):
        """An httpcore answer's body as httpx reads it."""

        def __init__(self, answer: Any) -> None:
            self._answer = answer

        def __iter__(self) -> Iterator[bytes]:
            yield from self._answer.stream

        def close(self) -> None:
            self._answer.close()

    class Transport(httpx.BaseTransport):
        def __init__(self) -> None:
            self._pool = httpcore.ConnectionPool(
                ssl_context=httpx.create_ssl_context(),
                max_connections=100,
                max_keepalive_connections=20,
                keepalive_expiry=5.0,
                network_backend=sockets,
            )

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            answer = self._pool.handle_request(
                httpcore.Request(
                    method=request.method,
                    url=httpcore.URL(
                        scheme=request.url.raw_scheme,
                        host=request.url.raw_host,
                        port=request.url.port,
                        target=request.url.raw_path,
                    ),
                    headers=request.headers.raw,
                    content=request.stream,
                    extensions=request.extensions,
                )
            )
            return httpx.Response(
                status_code=answer.status,
                headers=answer.headers,
                stream=Body(answer),
                extensions=answer.extensions,
            )

        def close(self) -> None:
            self._pool.close()

    return Transport()
