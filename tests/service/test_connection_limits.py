"""The HTTP server's bounds, over real sockets against real uvicorn configured as `python -m
service` configures it (service.server): the request head is bounded in bytes and in time, a
body in time, idle connections are closed, too many connections get 503 (but the probes are
answered), and the server's own answers carry the security headers.

Every wait below is an upper bound for a hang, never a timing assertion: the server is given
timeouts of about a second and the test allows many times that.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from service.main import create_app
from service.server import uvicorn_options
from tests.service.conftest import SettingsFactory

HANG = 20.0  # seconds: far beyond every timeout configured below
SECURITY = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
}


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """Connection handling does not depend on the database: SQLite only here."""
    return sqlite_url


@dataclass
class Served:
    """A uvicorn server running in a thread of the test process."""

    host: str
    port: int
    server: uvicorn.Server

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=HANG)
        return sock


@pytest.fixture
def served(migrated: SettingsFactory) -> Iterator[Served]:
    settings = migrated(
        host="127.0.0.1",
        port=_free_port(),
        max_header_bytes=8 * 1024,
        http_header_timeout_seconds=1.0,
        http_body_timeout_seconds=1.5,
        keep_alive_seconds=1,
        max_connections=20,
    )
    config = uvicorn.Config(create_app(settings), **uvicorn_options(settings))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + HANG
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield Served(settings.host, settings.port, server)
    finally:
        server.should_exit = True
        thread.join(HANG)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and whatever body came, until the server closes the connection."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def _closed_within(sock: socket.socket, seconds: float) -> bytes:
    """What the server sent before closing; fails if it keeps the connection open longer."""
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {seconds} s")
    return data


def test_a_huge_header_is_refused_early_and_others_are_served(served: Served) -> None:
    """128 MiB of header would stall every client; the server stops reading after its limit."""
    with served.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < 128 * 1024 * 1024:
                sock.sendall(b"a" * 65536)
                sent += 65536
        assert sent < 4 * 1024 * 1024, f"the server read {sent} bytes of one header"
        status, headers, body = _read_answer(sock)
    assert status in (0, 431)  # the answer may be lost in the reset of a refused upload
    if status == 431:
        assert {k: headers[k] for k in SECURITY} == SECURITY
        assert b"8192 bytes" in body
    assert httpx.get(f"{served.url}/healthz", timeout=HANG).status_code == 200


def test_a_head_just_over_the_limit_gets_431_with_security_headers(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n")
        status, headers, body = _read_answer(sock)
    assert status == 431
    assert {k: headers[k] for k in SECURITY} == SECURITY
    assert headers["connection"] == "close"
    assert body == b"request head is larger than the limit of 8192 bytes"


@pytest.mark.parametrize("size", [9000, 200_000])
def test_a_whole_head_over_the_limit_in_one_read_gets_431(served: Served, size: int) -> None:
    """The head arrives complete in one read: it is measured as parsed, not only as read."""
    with served.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n")
        status, headers, body = _read_answer(sock)
    assert status == 431
    assert {k: headers[k] for k in SECURITY} == SECURITY
    assert body == b"request head is larger than the limit of 8192 bytes"


def test_many_headers_over_the_limit_get_431(served: Served) -> None:
    headers = b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 50) for n in range(200))
    with served.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        status, _, _ = _read_answer(sock)
    assert status == 431


def test_a_head_within_the_limit_is_served(served: Served) -> None:
    response = httpx.get(f"{served.url}/healthz", headers={"X-Padding": "p" * 7000}, timeout=HANG)
    assert response.status_code == 200


def test_an_idle_connection_is_closed(served: Served) -> None:
    with served.connect() as sock:
        assert _closed_within(sock, HANG) == b""


def test_a_slow_head_is_closed_with_408(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        deadline = time.monotonic() + HANG
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while time.monotonic() < deadline:
                sock.sendall(b"X")  # one header byte at a time, never done
                time.sleep(0.1)
                sock.setblocking(False)
                try:
                    if sock.recv(65536, socket.MSG_PEEK) is not None:
                        break
                except BlockingIOError:
                    pass
                finally:
                    sock.setblocking(True)
        assert time.monotonic() < deadline, "the slow head was read for ever"
        status, headers, _ = _read_answer(sock)
    assert status == 408
    assert {k: headers[k] for k in SECURITY} == SECURITY


def test_a_slow_body_is_cut_off(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(
            b"POST /api/stories HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n"
            b'{"feature": "'
        )
        deadline = time.monotonic() + HANG
        closed = False
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while time.monotonic() < deadline and not closed:
                sock.sendall(b"x")  # a byte every 100 ms: 1000 bytes would take 100 s
                time.sleep(0.1)
                sock.setblocking(False)
                try:
                    closed = sock.recv(65536, socket.MSG_PEEK) is not None
                except BlockingIOError:
                    pass
                finally:
                    sock.setblocking(True)
        assert time.monotonic() < deadline, "the slow body was read for ever"
        status, headers, _ = _read_answer(sock)
    assert status == 408
    assert {k: headers[k] for k in SECURITY} == SECURITY
    assert httpx.get(f"{served.url}/api/stories", timeout=HANG).status_code == 200


def test_a_kept_alive_connection_is_closed_when_idle(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = _closed_within(sock, HANG)
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_a_malformed_request_gets_400_with_security_headers(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        status, headers, _ = _read_answer(sock)
    assert status == 400
    assert {k: headers[k] for k in SECURITY} == SECURITY


def test_too_many_connections_get_503_but_probes_are_answered(served: Served) -> None:
    idle = []
    try:
        for _ in range(25):  # more than max_connections (20), each holding a connection
            sock = served.connect()
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # a head that is not finished yet
            idle.append(sock)
        time.sleep(0.2)
        refused = httpx.get(f"{served.url}/api/stories", timeout=HANG)
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) >= 1
        assert {k: refused.headers[k] for k in SECURITY} == SECURITY
        assert httpx.get(f"{served.url}/healthz", timeout=HANG).status_code == 200
        assert httpx.get(f"{served.url}/readyz", timeout=HANG).status_code == 200
    finally:
        for sock in idle:
            sock.close()
    # The idle connections time out; the server serves everyone again.
    deadline = time.monotonic() + HANG
    while httpx.get(f"{served.url}/api/stories", timeout=HANG).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_head_requests_are_answered_without_a_body_by_the_server(served: Served) -> None:
    response = httpx.head(f"{served.url}/api/stories", timeout=HANG)
    assert response.status_code == 200 and response.content == b""
    assert int(response.headers["content-length"]) > 0
