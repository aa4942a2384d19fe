"""Open-loop HTTP/1.1 load generator: fixed request rate over many keep-alive connections.

Latency is measured from each request's scheduled send time, so a slow server cannot hide its
queueing delay by slowing the generator down (no coordinated omission). Only 127.0.0.1 targets.

    python bench/backend_loadgen.py --url http://127.0.0.1:8000/api/stories \
        --rate 1000 --connections 1000 --duration 30 [--clients 1000]

With --clients, the generator stands for a proxy (the ingress controller) in front of that many
clients: each connection sends the X-Forwarded-For of one of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Result:
    """What one run measured."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0

    def summary(self) -> dict[str, object]:
        """Throughput and latency percentiles in milliseconds."""
        lat = sorted(self.latencies)

        def pct(p: float) -> float:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else 0.0

        ok = sum(n for s, n in self.statuses.items() if 200 <= s < 300)
        return {
            "requests": len(lat),
            "ok": ok,
            "rps": round(len(lat) / self.elapsed, 1) if self.elapsed else 0.0,
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p99_ms": pct(0.99),
            "max_ms": round(lat[-1] * 1000, 2) if lat else 0.0,
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
            "seconds": round(self.elapsed, 2),
        }


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response with a Content-Length body; return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    if length:
        await reader.readexactly(length)
    return status


async def _connection(
    host: str,
    port: int,
    request: bytes,
    start: float,
    offset: float,
    interval: float,
    end: float,
    result: Result,
) -> None:
    """One keep-alive connection sending a request every `interval` seconds."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        result.errors[f"connect: {type(exc).__name__}"] += 1
        return
    scheduled = start + offset
    clock = time.perf_counter  # uvloop's loop.time() only has millisecond resolution
    try:
        while scheduled < end:
            delay = scheduled - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(request)
            try:
                status = await asyncio.wait_for(_read_response(reader), 30)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
                result.errors[type(exc).__name__] += 1
                return
            result.latencies.append(clock() - scheduled)
            result.statuses[status] += 1
            scheduled += interval
    finally:
        writer.close()


def client_address(n: int) -> str:
    """A distinct private address for client number `n` (up to 2**24 of them)."""
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def build_request(method: str, url: str, body: bytes | None, headers: dict[str, str]) -> bytes:
    """The raw HTTP/1.1 request bytes."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def run_load(
    url: str,
    rate: float,
    connections: int,
    duration: float,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    clients: int = 0,
) -> Result:
    """Send `rate` requests/s spread over `connections` connections for `duration` seconds."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if host not in {"127.0.0.1", "localhost"}:
        raise SystemExit("this generator only loads 127.0.0.1")
    interval = connections / rate

    def request_of(i: int) -> bytes:
        # With `clients`, connection i speaks for client i % clients, as a proxy in front of the
        # service would (X-Forwarded-For 10.x.y.z): what rate limits keyed on the client see.
        extra = {"X-Forwarded-For": client_address(i % clients)} if clients else {}
        return build_request(method, url, body, {**(headers or {}), **extra})

    result = Result()
    start = time.perf_counter() + 2.0  # time to open every connection before the clock starts
    end = start + duration
    tasks = [
        asyncio.create_task(
            _connection(
                host, port, request_of(i), start, interval * i / connections, interval, end, result
            )
        )
        for i in range(connections)
    ]
    await asyncio.gather(*tasks)
    result.elapsed = max(time.perf_counter(), end) - start
    return result


def main() -> None:
    """Command line: print the summary as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", default=None)
    parser.add_argument(
        "--clients",
        type=int,
        default=0,
        help="speak for this many clients through X-Forwarded-For (0: none)",
    )
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    body = args.body.encode() if args.body else None
    started = time.time()
    result = asyncio.run(
        run_load(
            args.url,
            args.rate,
            args.connections,
            args.duration,
            args.method,
            body,
            clients=args.clients,
        )
    )
    print(json.dumps({"started": started, **result.summary()}))


if __name__ == "__main__":
    main()
