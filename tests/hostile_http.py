"""A hostile HTTP server for tests: real sockets, one thread per connection, misbehaving on
purpose by path.

    /drip?every=S         the whole answer (status line on) one byte every S seconds
    /drip-body?every=S    headers at once, then a 1,000-byte body one byte every S seconds
    /endless              a body without length that never ends (until the client hangs up)
    /endless-chunked      the same as chunked transfer encoding
    /slow?seconds=S       `ok` after S seconds
    /markup?status=N      Rich markup in the body and a header: [red]x[/red] [bold [/]
    /progress?done_after=S  JSON {"state": "running"} until S seconds after the first request
                          to it, then {"state": "done"} (slow work a check polls)
    /echo?status=N        the request's headers (last first: the caller's own before the
                          client's) and its request line, back in the body
    anything else         200 `ok`

`requests` lists what was asked ("GET /path"); `close()` stops every loop and the server.
"""

from __future__ import annotations

import socketserver
import threading
import time
from urllib.parse import parse_qs, urlsplit

MARKUP = "<html>[red]x[/red] [bold [/] [link=http://evil]y[/link]"


class HostileServer:
    """Serves the misbehaviours above on 127.0.0.1 at `url`."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.requests: list[str] = []
        self.started: float | None = None
        hostile = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    while not hostile.stop.is_set() and self._one():
                        pass
                except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
                    pass  # the client hung up: that is the point of most answers here

            def _one(self) -> bool:
                line = self.rfile.readline(65537).decode("latin-1").strip()
                if not line:
                    return False
                headers: list[str] = []
                while True:
                    header = self.rfile.readline(65537).decode("latin-1")
                    if header in ("\r\n", "\n", ""):
                        break
                    headers.append(header.strip())
                length = next(
                    (
                        int(h.split(":", 1)[1])
                        for h in headers
                        if h.lower().startswith("content-length:")
                    ),
                    0,
                )
                if length:
                    self.rfile.read(length)
                method, target = line.split(" ")[:2]
                hostile.requests.append(f"{method} {target}")
                parts = urlsplit(target)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                return hostile._answer(self.wfile, parts.path, query, line, headers)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _answer(self, out, path: str, query: dict[str, str], line: str, headers: list[str]) -> bool:
        """Write the answer for `path`; whether the connection may serve another request."""
        status = int(query.get("status", "200"))
        if path == "/drip":
            self._drip(out, _response(200, b"ok"), float(query.get("every", "1")))
            return False
        if path == "/drip-body":
            head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
            out.write(head)
            out.flush()
            self._drip(out, b"x" * 1000, float(query.get("every", "1")))
            return False
        if path == "/endless":
            out.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
            while not self.stop.is_set():
                out.write(b"x" * 65536)
            return False
        if path == "/endless-chunked":
            out.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            while not self.stop.is_set():
                out.write(b"10000\r\n" + b"y" * 65536 + b"\r\n")
            return False
        if path == "/slow":
            self.stop.wait(float(query.get("seconds", "1")))
            out.write(_response(200, b"ok"))
            return True
        if path == "/progress":
            self.started = self.started or time.monotonic()
            done = time.monotonic() - self.started >= float(query.get("done_after", "1"))
            body = b'{"state": "done"}' if done else b'{"state": "running"}'
            out.write(_response(200, body))
            return True
        if path == "/markup":
            out.write(_response(status, MARKUP.encode(), extra=b"X-Note: [bold]hi[/\r\n"))
            return True
        if path == "/echo":
            body = "\n".join([*reversed(headers), line]).encode("latin-1")
            out.write(_response(status, body))
            return True
        out.write(_response(200, b"ok"))
        return True

    def _drip(self, out, data: bytes, every: float) -> None:
        for i in range(len(data)):
            if self.stop.is_set():
                return
            out.write(data[i : i + 1])
            out.flush()
            self.stop.wait(every)

    def close(self) -> None:
        """Stop every misbehaviour and the server."""
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def _response(status: int, body: bytes, extra: bytes = b"") -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n".encode()
        + extra
        + b"\r\n"
        + body
    )
