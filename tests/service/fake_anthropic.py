"""A local stand-in for the Anthropic Messages API: a real HTTP server the real SDK talks to."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GOOD_REPLY = {
    "stories": [
        {
            "title": "Export invoices",
            "as_a": "accountant",
            "i_want": "to export invoices as PDF",
            "so_that": "I can send them to clients",
            "acceptance_criteria": [
                {"given": "an invoice exists", "when": "I click export", "then": "a PDF downloads"}
            ],
            "priority": "high",
            "estimate": 3,
        },
        {
            "title": "Bulk export",
            "as_a": "accountant",
            "i_want": "to export many invoices at once",
            "so_that": "month-end closing is fast",
            "acceptance_criteria": [
                {"given": "ten invoices", "when": "I export all", "then": "I get one ZIP"},
                {"given": "no invoices", "when": "I export all", "then": "I see a message"},
            ],
            "priority": "Medium",
            "estimate": 5,
        },
    ]
}

# Behaviours: "ok", "fenced" (JSON in a Markdown fence), "malformed" (not JSON), "schema" (JSON of
# the wrong shape), "timeout" (answers after `slow_seconds`), "429", "529", "500", "400".
BEHAVIOURS = {"ok", "fenced", "malformed", "schema", "timeout", "429", "529", "500", "400"}


@dataclass
class FakeMessagesAPI:
    """Scripted replies: each call takes the next behaviour from `script`, then `default`."""

    default: str = "ok"
    delay_seconds: float = 0.0
    slow_seconds: float = 1.5
    retry_after: str = "0"
    script: deque[str] = field(default_factory=deque)
    calls: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    # Where it listens: loopback, or an address pods reach (the real node's bridge gateway);
    # port 0 picks a free one.
    host: str = "127.0.0.1"
    port: int = 0

    @property
    def base_url(self) -> str:
        """Where the SDK should send requests."""
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def queue(self, *behaviours: str) -> None:
        """Script the next replies in order."""
        assert set(behaviours) <= BEHAVIOURS, behaviours
        with self.lock:
            self.script.extend(behaviours)

    def next_behaviour(self, request: dict[str, Any], headers: dict[str, str]) -> str:
        """Record the call and pick its behaviour."""
        with self.lock:
            self.calls.append({"body": request, "headers": headers})
            return self.script.popleft() if self.script else self.default

    def start(self) -> FakeMessagesAPI:
        """Serve on `host`:`port` in a daemon thread."""
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any], extra: dict[str, str]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                request = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/") != "/v1/messages":
                    self._send(404, {"type": "error", "error": {"type": "not_found_error"}}, {})
                    return
                behaviour = api.next_behaviour(
                    request, {k.lower(): v for k, v in self.headers.items()}
                )
                if api.delay_seconds:
                    time.sleep(api.delay_seconds)
                if behaviour == "timeout":
                    time.sleep(api.slow_seconds)
                    behaviour = "ok"
                if behaviour in {"429", "529", "500", "400"}:
                    kinds = {
                        "429": "rate_limit_error",
                        "529": "overloaded_error",
                        "500": "api_error",
                        "400": "invalid_request_error",
                    }
                    error = {
                        "type": "error",
                        "error": {"type": kinds[behaviour], "message": "fake"},
                    }
                    headers = {"retry-after": api.retry_after} if behaviour == "429" else {}
                    self._send(int(behaviour), error, headers)
                    return
                text = {
                    "ok": json.dumps(GOOD_REPLY),
                    "fenced": "```json\n" + json.dumps(GOOD_REPLY) + "\n```",
                    "malformed": '{"stories": [{"title": "cut off',
                    "schema": json.dumps({"stories": [{"title": "no fields", "estimate": 4}]}),
                }[behaviour]
                message = {
                    "id": f"msg_fake_{len(api.calls)}",
                    "type": "message",
                    "role": "assistant",
                    "model": request.get("model", "fake"),
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": 10, "output_tokens": 100},
                }
                self._send(200, message, {})

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients that time out hang up mid-reply; that is the point of the test

        server = Server((self.host, self.port), Handler)
        self.server = server
        threading.Thread(target=server.serve_forever, daemon=True, name="fake-anthropic").start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def main() -> None:
    """Serve until interrupted, for a deploy by hand where the real API cannot be reached:
    `python -m tests.service.fake_anthropic --host 10.244.0.1 --port 8765`."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    options = parser.parse_args()
    api = FakeMessagesAPI(host=options.host, port=options.port).start()
    print(f"a stand-in of the Anthropic Messages API at {api.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        api.stop()


if __name__ == "__main__":
    main()
