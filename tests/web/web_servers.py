"""Real processes for the web tests and benchmarks: the backend, nginx with the image's config, the build."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "service" / "web"
ARTIFACTS = REPO / "artifacts"
CHROMIUM = Path(os.environ.get("AUTODEVHUB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def nginx_binary() -> str | None:
    """Path of Debian's nginx (often outside a non-root PATH), or None."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def missing_browser_tools() -> list[str]:
    """What the browser tests need and this machine lacks, as install hints."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if nginx_binary() is None:
        missing.append("nginx (apt-get install nginx-light)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install playwright; never `playwright install`)")
    if shutil.which("node") is None:
        missing.append("node (to build the front end)")
    return missing


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(
    url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0
) -> None:
    """Poll `url` until it answers 200; fail with the process log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n{tail(log)}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s:\n{tail(log)}")


def tail(log: Path, lines: int = 30) -> str:
    """The last lines of a log file, for failure messages."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop one process we started (its own process group), politely first."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@dataclass(frozen=True)
class Running:
    """A started server: where it answers and where it logs."""

    url: str
    port: int
    log: Path


def backend_env(workdir: Path, port: int) -> dict[str, str]:
    """Environment for the real backend: SQLite in `workdir`, offline generator, dev settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "API_KEYS", "DATABASE_URL", "APP_ENV"))
    }
    env.update(
        PORT=str(port),
        HOST="127.0.0.1",
        DATABASE_URL=f"sqlite:///{workdir / 't.db'}",
        APP_ENV="dev",
        PYTHONPATH=str(REPO),
    )
    return env


@contextlib.contextmanager
def run_backend(workdir: Path, extra_env: dict[str, str] | None = None) -> Iterator[Running]:
    """`python3 -m service migrate`, then `python3 -m service` on a free port, until the block ends."""
    port = free_port()
    env = backend_env(workdir, port) | (extra_env or {})
    log = workdir / "backend.log"
    migrate = subprocess.run(
        [sys.executable, "-m", "service", "migrate"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if migrate.returncode != 0:
        raise RuntimeError(f"python -m service migrate failed:\n{migrate.stderr[-3000:]}")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc, log)
        yield Running(url=f"http://127.0.0.1:{port}", port=port, log=log)
    finally:
        stop(proc)


def build_dist(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run the production build (node service/web/build.mjs --out OUT)."""
    return subprocess.run(
        ["node", str(WEB / "build.mjs"), "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


@contextlib.contextmanager
def run_nginx(web_root: Path, api_upstream: str, workdir: Path) -> Iterator[Running]:
    """nginx with service/web/nginx.conf, filled in by docker-entrypoint.sh as in the image."""
    nginx = nginx_binary()
    if nginx is None:
        raise RuntimeError("nginx is not installed")
    port = free_port()
    conf = workdir / f"nginx-{port}.conf"
    log = workdir / f"nginx-{port}.log"
    env = os.environ | {
        "LISTEN_PORT": str(port),
        "API_UPSTREAM": api_upstream,
        "WEB_ROOT": str(web_root),
        "NGINX_TEMPLATE": str(WEB / "nginx.conf"),
        "NGINX_CONF": str(conf),
    }
    # As root, nginx's workers would run as nobody; keep them as root so they can read the
    # test's files. The image runs nginx as a non-root user, where `user` does not apply.
    globals_ = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["sh", str(WEB / "docker-entrypoint.sh"), nginx, "-c", str(conf), "-g", globals_],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc, log, timeout=15)
        yield Running(url=f"http://127.0.0.1:{port}", port=port, log=log)
    finally:
        stop(proc)


# Performance API figures for the page's own resources (not /api calls), one entry per URL: the
# icon is both <link rel=icon> and <img>, and its second use comes from memory.
MEASURE_JS = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const paints = performance.getEntriesByType("paint");
  const fcp = paints.find((e) => e.name === "first-contentful-paint");
  const byUrl = new Map();
  for (const r of performance.getEntriesByType("resource")) {
    if (r.name.includes("/api/")) continue;
    const seen = byUrl.get(r.name);
    if (!seen || r.transferSize > seen.transferSize) byUrl.set(r.name, r);
  }
  const all = [nav, ...byUrl.values()];
  return {
    fcp_ms: fcp ? fcp.startTime : null,
    dom_content_loaded_ms: nav.domContentLoadedEventEnd,
    load_ms: nav.loadEventEnd,
    requests: all.length,
    transfer_bytes: all.reduce((s, r) => s + r.transferSize, 0),
    encoded_body_bytes: all.reduce((s, r) => s + r.encodedBodySize, 0),
    decoded_body_bytes: all.reduce((s, r) => s + r.decodedBodySize, 0),
    files: all.map((r) => ({
      url: new URL(r.name).pathname, transfer: r.transferSize, encoded: r.encodedBodySize,
    })),
  };
}"""


def measure_load(page: Any, url: str, timeout: float = 10.0) -> dict[str, Any]:
    """Load `url` and read first contentful paint and bytes from the Performance API.

    Polls with page.evaluate rather than wait_for_function: the latter evaluates its predicate
    with eval() in the page, which the page's CSP (no 'unsafe-eval') rightly refuses.
    """
    page.goto(url, wait_until="load")
    deadline = time.monotonic() + timeout
    while True:
        figures: dict[str, Any] = page.evaluate(MEASURE_JS)
        if figures["fcp_ms"] is not None or time.monotonic() > deadline:
            return figures
        time.sleep(0.02)


@contextlib.contextmanager
def run_dev_server(api_upstream: str, workdir: Path) -> Iterator[Running]:
    """`node service/web/dev.mjs`: src/ as is, /api proxied, until the block ends."""
    port = free_port()
    log = workdir / f"dev-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["node", str(WEB / "dev.mjs"), "--port", str(port), "--api", api_upstream],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc, log, timeout=15)
        yield Running(url=f"http://127.0.0.1:{port}", port=port, log=log)
    finally:
        stop(proc)
