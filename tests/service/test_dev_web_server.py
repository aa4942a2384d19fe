"""The development web server (`node service/web/dev.mjs`) survives hostile requests: a
malformed percent-encoding, a request target that is not a URL, a path with NUL, an upstream
that is down. Before, one `GET /%E0%A4%A` ended the process (an uncaught URIError)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.web_servers import Running, free_port, run_dev_server

HANG = 15.0


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    closed_port = free_port()  # nothing listens there: the API upstream is down
    with run_dev_server(f"127.0.0.1:{closed_port}", tmp_path_factory.mktemp("dev")) as running:
        yield running


def _raw(running: Running, target: bytes) -> bytes:
    """Send one request with `target` exactly as given; the server's whole answer."""
    with socket.create_connection(("127.0.0.1", running.port), timeout=HANG) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


@pytest.mark.parametrize(
    ("target", "status"),
    [
        (b"/%E0%A4%A", b"400"),
        (b"/%", b"400"),
        (b"/%zz.js", b"400"),
        (b"/%ff%fe", b"400"),
        (b"/a%00b.js", b"404"),
        (b"/../../etc/passwd", b"200"),  # the page: what a client-side route gets
        (b"/%2e%2e/%2e%2e/etc/passwd", b"200"),
        (b"/..%2f..%2fetc%2fpasswd", b"200"),
        (b"/api/stories", b"503"),
        (b"/index.html", b"200"),
    ],
)
def test_hostile_requests_are_answered_and_the_server_lives_on(
    dev_server: Running, target: bytes, status: bytes
) -> None:
    answer = _raw(dev_server, target)
    assert answer.split(b" ", 2)[1] == status, answer[:200]
    assert b"x-content-type-options: nosniff" in answer.lower()
    assert b"root:" not in answer
    healthy = _raw(dev_server, b"/healthz")
    assert healthy.startswith(b"HTTP/1.1 200"), f"the server died: {healthy!r}"


def test_the_log_shows_no_crash(dev_server: Running) -> None:
    for target in (b"/%E0%A4%A", b"/%"):
        _raw(dev_server, target)
    assert "URIError" not in Path(dev_server.log).read_text(errors="replace")


def test_node_checks_the_script() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    script = Path(__file__).resolve().parents[2] / "service" / "web" / "dev.mjs"
    result = subprocess.run(["node", "--check", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
