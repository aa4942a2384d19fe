"""`python -m service` under real uvicorn: the client address that rate limits and failed-key
limits count by is X-Forwarded-For only from a proxy in FORWARDED_ALLOW_IPS."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.service.conftest import serve_service

KEY = "k3y-for-tests-0123456789abcdef"
PROXY = "127.0.0.1"  # trusted: FORWARDED_ALLOW_IPS
STRANGER = "127.0.0.2"  # also loopback, but not trusted


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service on a free port, dev settings, three wrong keys a minute per address."""
    work = tmp_path_factory.mktemp("addr")
    settings = {
        "APP_ENV": "dev",
        "HOST": "0.0.0.0",
        "DATABASE_URL": f"sqlite:///{work / 'stories.db'}",
        "API_KEYS": KEY,
        "AUTH_FAILURES_PER_MINUTE": "3",
        "RATE_LIMIT_PER_MINUTE": "0",
        "FORWARDED_ALLOW_IPS": PROXY,
        "ACCESS_LOG": "false",
    }
    service = serve_service(settings, work / "service.log", cwd=work, timeout=60)
    try:
        yield service.base_url
    finally:
        service.stop(timeout=20)


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
