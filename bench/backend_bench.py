"""Backend benchmark on PostgreSQL: list and submit latency under load, generation throughput.

Starts `python -m service` (WORKERS=2 by default) against a fresh PostgreSQL database, drives it
with bench/backend_loadgen.py (open loop, 127.0.0.1 only), then measures how many stories an
instance generates per hour when every model call takes 2 s (fake Messages API).

    python bench/backend_bench.py                 # all scenarios, prints JSON and Markdown
    python bench/backend_bench.py --only list     # one scenario: list, list-nocache, post, generate
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.service.fake_anthropic import FakeMessagesAPI  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    """An unused 127.0.0.1 port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    import psycopg

    name = f"autodevhub_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def service(database_url: str, **env: str | None) -> Iterator[str]:
    """`python -m service` with the given settings (None: the service's default); yields its
    base URL once ready."""
    port = free_port()
    settings = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "WORKERS": "2",
        "RATE_LIMIT_PER_MINUTE": "0",
        "READ_RATE_LIMIT_PER_MINUTE": "0",
        **env,
    }
    full_env = {k: v for k, v in settings.items() if v is not None}
    log = open(REPO / "var" / "bench-service.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "service"], env=full_env, cwd=REPO, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("service did not become ready; see var/bench-service.log")
            time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def migrate(database_url: str) -> None:
    """Apply the migrations to the scratch database."""
    subprocess.run(
        [sys.executable, "-m", "service", "migrate"],
        env={**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "warning"},
        cwd=REPO,
        check=True,
    )


def seed(base: str, count: int) -> None:
    """Create `count` story sets through the API and wait until they are generated."""

    async def go() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            sem = asyncio.Semaphore(20)

            async def one(i: int) -> None:
                async with sem:
                    body = {
                        "feature": f"Feature {i}: export invoices and reports",
                        "persona": "user",
                    }
                    response = await client.post("/api/stories", json=body)
                    response.raise_for_status()

            await asyncio.gather(*(one(i) for i in range(count)))
            while True:
                page = (await client.get("/api/stories", params={"limit": 100})).json()
                if all(item["status"] == "done" for item in page["items"]):
                    return
                await asyncio.sleep(0.5)

    asyncio.run(go())


def load(base: str, path: str, rate: float, connections: int, duration: float, **kw: Any) -> dict:
    """Run the open-loop generator in a separate process so it does not share our GIL."""
    cmd = [
        sys.executable,
        str(REPO / "bench" / "backend_loadgen.py"),
        "--url",
        base + path,
        "--rate",
        str(rate),
        "--connections",
        str(connections),
        "--duration",
        str(duration),
    ]
    if kw.get("body") is not None:
        cmd += ["--method", "POST", "--body", kw["body"]]
    if kw.get("clients"):
        cmd += ["--clients", str(kw["clients"])]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out))


def generation_throughput(database_url: str, sets: int, delay: float) -> dict[str, Any]:
    """Submit `sets` requests at once to an instance whose model takes `delay` s per call."""
    fake = FakeMessagesAPI(delay_seconds=delay).start()
    try:
        env = {
            "ANTHROPIC_API_KEY": "sk-ant-bench-0123456789",
            "ANTHROPIC_BASE_URL": fake.base_url,
            "ANTHROPIC_MODEL": "claude-bench",
            "ANTHROPIC_TIMEOUT_SECONDS": "30",
            "LOG_LEVEL": "warning",
        }
        with service(database_url, **env) as base:
            ids: list[str] = []
            started = time.perf_counter()
            with httpx.Client(base_url=base, timeout=30) as client:
                for i in range(sets):
                    response = client.post("/api/stories", json={"feature": f"Bench feature {i}"})
                    ids.append(response.json()["id"])
                pending = set(ids)
                stories = 0
                while pending:
                    time.sleep(0.5)
                    for story_set_id in list(pending):
                        body = client.get(f"/api/stories/{story_set_id}").json()
                        if body["status"] in {"done", "failed"}:
                            pending.discard(story_set_id)
                            stories += len(body["stories"])
            elapsed = time.perf_counter() - started
    finally:
        fake.stop()
    return {
        "sets": sets,
        "model_delay_s": delay,
        "seconds": round(elapsed, 1),
        "stories": stories,
        "sets_per_hour": round(sets / elapsed * 3600),
        "stories_per_hour": round(stories / elapsed * 3600),
        "model_calls": len(fake.calls),
    }


def limited_reads(database_url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Reads with the default rate limits on, the generator standing for the ingress in front
    of `--connections` clients: with the proxy trusted (FORWARDED_ALLOW_IPS, as the manifests
    set it) each client has its own bucket; without, every client shares the proxy's."""
    out: dict[str, Any] = {}
    limits: dict[str, str | None] = {
        "RATE_LIMIT_PER_MINUTE": None,
        "READ_RATE_LIMIT_PER_MINUTE": None,
    }
    # Not trusted: the proxy list names another address (192.0.2.1, TEST-NET-1), as a pod whose
    # FORWARDED_ALLOW_IPS does not hold the ingress controller's.
    for name, trusted in (("proxy_trusted", "127.0.0.1"), ("proxy_not_trusted", "192.0.2.1")):
        env = {**limits, "FORWARDED_ALLOW_IPS": trusted, "LOG_LEVEL": "info"}
        with service(database_url, **env) as base:
            out[name] = load(
                base,
                "/api/stories",
                args.list_rate,
                args.connections,
                args.duration,
                clients=args.connections,
            )
    return out


def main() -> None:
    """Run the scenarios and print the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", choices=["list", "list-nocache", "post", "generate", "list-limited"]
    )
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--seed", type=int, default=2000)
    parser.add_argument("--list-rate", type=float, default=1000)
    parser.add_argument("--nocache-rate", type=float, default=300)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--post-rate", type=float, default=100)
    parser.add_argument("--post-connections", type=int, default=100)
    parser.add_argument("--generate-sets", type=int, default=400)
    args = parser.parse_args()
    (REPO / "var").mkdir(exist_ok=True)
    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_before": os.getloadavg()}
    wanted = (
        {args.only} if args.only else {"list", "list-nocache", "post", "generate", "list-limited"}
    )
    with scratch_database() as database_url:
        migrate(database_url)
        quiet = {"LOG_LEVEL": "info"}
        if wanted & {"list", "list-nocache", "post", "list-limited"}:
            with service(database_url, **quiet) as base:
                seed(base, args.seed)
                if "list" in wanted:
                    results["list"] = load(
                        base, "/api/stories", args.list_rate, args.connections, args.duration
                    )
                if "post" in wanted:
                    body = json.dumps(
                        {"feature": "Export invoices as PDF", "persona": "accountant"}
                    )
                    results["post"] = load(
                        base,
                        "/api/stories",
                        args.post_rate,
                        args.post_connections,
                        args.duration,
                        body=body,
                    )
        if "list-nocache" in wanted:
            with service(database_url, LIST_CACHE_SECONDS="0", **quiet) as base:
                results["list_nocache"] = load(
                    base, "/api/stories", args.nocache_rate, args.connections, args.duration
                )
        if "generate" in wanted:
            results["generate"] = generation_throughput(database_url, args.generate_sets, 2.0)
        if "list-limited" in wanted:
            results["list_limited"] = limited_reads(database_url, args)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
