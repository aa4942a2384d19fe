"""Smoke checks against a scripted local HTTP server: values pass from one answer to the next,
a release still settling is waited for, and one that is up and wrong fails after a few
identical answers instead of at the deadline, saying what it answered."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from autodevhub_cli.core.config import load_environment
from autodevhub_cli.core.project import find_project
from autodevhub_cli.core.smoke import Endpoint, run_smoke_checks
from tests.helpers import copy_project

Answer = tuple[int, dict[str, object] | str]


class Script:
    """Answers by request: `handler(method, path, count)` -> (status, JSON or text)."""

    def __init__(self, handler: Callable[[str, str, int], Answer]) -> None:
        self.handler = handler
        self.count = 0
        self.seen: list[str] = []


@pytest.fixture()
def serve() -> Iterator[Callable[[Callable[[str, str, int], Answer]], tuple[str, Script]]]:
    servers: list[ThreadingHTTPServer] = []

    def start(handler: Callable[[str, str, int], Answer]) -> tuple[str, Script]:
        script = Script(handler)

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                script.count += 1
                script.seen.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                status, body = script.handler(self.command, self.path, script.count)
                data = (json.dumps(body) if isinstance(body, dict) else body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", script

    yield start
    for server in servers:
        server.shutdown()


def _environment(tmp_path: Path, checks: str, *sets: str) -> object:
    project = find_project(copy_project(tmp_path / "project"))
    return load_environment(
        project,
        "dev",
        ["smoke.probes=false", "smoke.timeout_seconds=60", f"smoke.checks={checks}", *sets],
        environ={},
    )


ROUND_TRIP = (
    "[{name: round trip, component: backend, steps: ["
    "{method: POST, path: /api/items, expect: {status: 202}, capture: {id: id}},"
    "{path: '/api/items/${id}', poll: {until: {state: done}, interval_seconds: 0.05},"
    " expect: {status: 200, not_empty: [parts]}},"
    "{method: DELETE, path: '/api/items/${id}', expect: {status: 204}}]}]"
)


def test_a_sequence_passes_captured_values_and_polls(serve, tmp_path: Path) -> None:
    polls = {"n": 0}

    def handler(method: str, path: str, count: int) -> Answer:
        if method == "POST":
            return 202, {"id": "abc", "state": "queued"}
        if method == "DELETE":
            return 204, ""
        polls["n"] += 1
        return 200, {"id": "abc", "state": "done" if polls["n"] >= 3 else "running", "parts": [1]}

    url, script = serve(handler)
    env = _environment(tmp_path, ROUND_TRIP)
    result = run_smoke_checks(env, {"backend": Endpoint(url)})
    assert result.ok, result.summary()
    assert script.seen == [
        "POST /api/items",
        "GET /api/items/abc",
        "GET /api/items/abc",
        "GET /api/items/abc",
        "DELETE /api/items/abc",
    ]


def test_up_and_wrong_fails_after_the_confirmation_not_at_the_deadline(
    serve, tmp_path: Path
) -> None:
    # Every attempt creates a new item (a new id), then the GET answers the same 500.
    def handler(method: str, path: str, count: int) -> Answer:
        if method == "POST":
            return 202, {"id": f"item-{count}"}
        return 500, "Internal Server Error: no such table: items"

    url, _ = serve(handler)
    env = _environment(tmp_path, ROUND_TRIP, "smoke.confirm_attempts=3")
    result = run_smoke_checks(env, {"backend": Endpoint(url)})
    check = result.checks[0]
    assert not check.ok
    assert check.attempts == 3, "three identical wrong answers, then it stops"
    assert "answered 500, expected 200: Internal Server Error: no such table: items" in check.detail
    assert "the same answer 3 times in a row" in check.detail


def test_a_release_still_settling_is_waited_for(serve, tmp_path: Path) -> None:
    # A proxy without a ready upstream (502), then a readiness 503, then the right answer.
    def handler(method: str, path: str, count: int) -> Answer:
        if count <= 3:
            return 502, "Bad Gateway"
        if count <= 6:
            return 503, {"ready": False}
        return 200, "<html>ok</html>"

    url, _ = serve(handler)
    checks = "[{name: page, component: frontend, path: /, expect: {contains: '<html'}}]"
    env = _environment(tmp_path, checks, "smoke.confirm_attempts=2")
    result = run_smoke_checks(env, {"frontend": Endpoint(url)})
    assert result.ok, result.summary()
    assert result.checks[0].attempts == 7


def test_refused_connections_are_settling_too(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    checks = "[{name: page, component: frontend, path: /}]"
    env = _environment(tmp_path, checks, "smoke.confirm_attempts=1")
    result = run_smoke_checks(env, {"frontend": Endpoint(f"http://127.0.0.1:{port}")}, timeout=1.5)
    check = result.checks[0]
    assert not check.ok and check.attempts > 1, "retried until the deadline, not confirmed"
    assert "ConnectError" in check.detail


def test_a_wrong_body_is_confirmed_and_shown(serve, tmp_path: Path) -> None:
    url, _ = serve(lambda method, path, count: (200, "<p>maintenance</p>"))
    checks = "[{name: page, component: frontend, path: /, expect: {contains: '<html'}}]"
    env = _environment(tmp_path, checks)
    result = run_smoke_checks(env, {"frontend": Endpoint(url)})
    check = result.checks[0]
    assert not check.ok and check.attempts == 3
    assert "does not contain '<html': '<p>maintenance</p>'" in check.detail
