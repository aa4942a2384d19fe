"""`python -m service` under real uvicorn: the client address that rate limits and failed-key
limits count by is X-Forwarded-For only from a proxy in FORWARDED_ALLOW_IPS."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
KEY = "k3y-for-tests-0123456789abcdef"
PROXY = "127.0.0.1"  # trusted: FORWARDED_ALLOW_IPS
STRANGER = "127.0.0.2"  # also loopback, but not trusted


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service on a free port, dev settings, three wrong keys a minute per address."""
    work = tmp_path_factory.mktemp("addr")
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "API_KEYS", "DATABASE_URL", "APP_ENV"))
    }
    env.update(
        APP_ENV="dev",
        HOST="0.0.0.0",
        PORT=str(port),
        DATABASE_URL=f"sqlite:///{work / 'stories.db'}",
        API_KEYS=KEY,
        AUTH_FAILURES_PER_MINUTE="3",
        RATE_LIMIT_PER_MINUTE="0",
        FORWARDED_ALLOW_IPS=PROXY,
        ACCESS_LOG="false",
        PYTHONPATH=str(REPO),
    )
    log = (work / "service.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "service"], cwd=work, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (work / "service.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _post(base_url: str, source: str, forwarded_for: str, key: str) -> int:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=10) as client:
        response = client.post(
            f"{base_url}/api/stories",
            json={"feature": "Export invoices"},
            headers={"Authorization": f"Bearer {key}", "X-Forwarded-For": forwarded_for},
        )
    return response.status_code


def test_clients_behind_the_trusted_proxy_are_counted_apart(base_url: str) -> None:
    first = [_post(base_url, PROXY, "198.51.100.1", "wrong") for _ in range(4)]
    assert first == [401, 401, 401, 429]
    assert _post(base_url, PROXY, "198.51.100.2", "wrong") == 401
    assert _post(base_url, PROXY, "198.51.100.2", KEY) == 202


def test_an_untrusted_peer_cannot_choose_its_address(base_url: str) -> None:
    codes = [_post(base_url, STRANGER, f"198.51.100.{10 + n}", "wrong") for n in range(5)]
    assert codes == [401, 401, 401, 429, 429]
