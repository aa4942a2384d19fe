"""Auth, body and field limits, rate limits, CORS and secret hygiene."""

from __future__ import annotations

import hashlib
import json
import logging
import time

import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from service.security import RateLimiter, address_key
from tests.service.conftest import SettingsFactory

KEY = "k3y-for-tests-0123456789abcdef"


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """Security behaviour does not depend on the database: SQLite only here."""
    return sqlite_url


def test_write_endpoints_require_a_key_when_keys_are_configured(
    migrated: SettingsFactory,
) -> None:
    with TestClient(create_app(migrated(api_keys=KEY))) as client:
        missing = client.post("/api/stories", json={"feature": "Needs a key"})
        assert missing.status_code == 401
        assert missing.json() == {"detail": "missing bearer API key"}
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = client.post(
            "/api/stories", json={"feature": "Needs a key"}, headers={"Authorization": "Bearer no"}
        )
        assert wrong.status_code == 401 and wrong.json() == {"detail": "invalid API key"}
        ok = client.post(
            "/api/stories",
            json={"feature": "Needs a key"},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert ok.status_code == 202
        story_set_id = ok.json()["id"]
        assert client.get(f"/api/stories/{story_set_id}").status_code == 200
        assert client.delete(f"/api/stories/{story_set_id}").status_code == 401
        deleted = client.delete(
            f"/api/stories/{story_set_id}", headers={"Authorization": f"Bearer {KEY}"}
        )
        assert deleted.status_code == 204


def test_keys_may_be_configured_as_sha256_digests(migrated: SettingsFactory) -> None:
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    settings = migrated(api_keys=f"sha256:{digest}")
    assert settings.api_keys == [digest]
    with TestClient(create_app(settings)) as client:
        ok = client.post(
            "/api/stories", json={"feature": "Hashed"}, headers={"Authorization": f"Bearer {KEY}"}
        )
        assert ok.status_code == 202


def test_plain_keys_are_hashed_at_load(migrated: SettingsFactory) -> None:
    settings = migrated(api_keys=f"{KEY},other-key-0123456789")
    assert KEY not in settings.model_dump_json()
    assert settings.api_keys[0] == hashlib.sha256(KEY.encode()).hexdigest()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"feature": "ab"}, "feature"),
        ({"feature": "   abc   "[:5]}, "feature"),
        ({"feature": "x" * 4001}, "feature"),
        ({"feature": "valid feature", "context": "c" * 4001}, "context"),
        ({"feature": "valid feature", "persona": "p" * 201}, "persona"),
        ({"feature": "valid feature", "unknown": 1}, "unknown"),
        ({}, "feature"),
        ({"feature": 42}, "feature"),
    ],
)
def test_field_limits_are_422_naming_the_field(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    response = client.post("/api/stories", json=body)
    assert response.status_code == 422, response.text
    assert any(error["loc"][-1] == field for error in response.json()["detail"])


def test_field_at_the_limit_is_accepted(client: TestClient) -> None:
    body = {"feature": "f" * 4000, "context": "c" * 4000, "persona": "p" * 200}
    assert client.post("/api/stories", json=body).status_code == 202


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    response = client.post(
        "/api/stories",
        content=json.dumps({"feature": "x" * 70_000}),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json() == {"detail": "request body is larger than the limit of 65536 bytes"}


def test_streamed_body_over_the_limit_is_413(client: TestClient) -> None:
    def chunks():  # no Content-Length: the limit is enforced while reading
        yield b'{"feature": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}'

    response = client.post(
        "/api/stories", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_write_rate_limit_is_429_with_retry_after(migrated: SettingsFactory) -> None:
    with TestClient(create_app(migrated(rate_limit_per_minute=3))) as client:
        codes = [
            client.post("/api/stories", json={"feature": "Spam"}).status_code for _ in range(4)
        ]
        assert codes == [202, 202, 202, 429]
        limited = client.post("/api/stories", json={"feature": "Spam"})
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert "rate limit of 3 requests per minute" in limited.json()["detail"]
        assert client.get("/api/stories").status_code == 200
        metrics = client.get("/metrics").text
        assert 'rate_limited_total{scope="write"} 2.0' in metrics


def test_rate_limit_is_per_client(migrated: SettingsFactory) -> None:
    settings = migrated(rate_limit_per_minute=1, api_keys=f"{KEY},second-key-0123456789")
    with TestClient(create_app(settings)) as client:

        def post(key: str) -> int:
            headers = {"Authorization": f"Bearer {key}"}
            return client.post(
                "/api/stories", json={"feature": "Mine"}, headers=headers
            ).status_code

        assert [post(KEY), post(KEY), post("second-key-0123456789")] == [202, 429, 202]


def test_read_rate_limit(migrated: SettingsFactory) -> None:
    with TestClient(create_app(migrated(read_rate_limit_per_minute=2))) as client:
        codes = [client.get("/api/stories").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert client.get("/healthz").status_code == 200


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_read_limit_ignores_unverified_tokens(migrated: SettingsFactory) -> None:
    settings = migrated(read_rate_limit_per_minute=3, api_keys=KEY)
    with TestClient(create_app(settings)) as client:
        # A fresh random token per request once got a fresh bucket each: no limit at all.
        codes = [
            client.get("/api/stories", headers=_bearer(f"random-{n}")).status_code for n in range(5)
        ]
        assert codes == [200, 200, 200, 429, 429]
        # A verified key has its own bucket, apart from its address's.
        assert client.get("/api/stories", headers=_bearer(KEY)).status_code == 200


def test_tokens_name_no_bucket_when_no_keys_are_configured(migrated: SettingsFactory) -> None:
    settings = migrated(read_rate_limit_per_minute=2, rate_limit_per_minute=2)
    with TestClient(create_app(settings)) as client:
        reads = [client.get("/api/stories", headers=_bearer(f"r{n}")).status_code for n in range(3)]
        writes = [
            client.post(
                "/api/stories", json={"feature": "Open writes"}, headers=_bearer(f"w{n}")
            ).status_code
            for n in range(3)
        ]
        assert reads == [200, 200, 429] and writes == [202, 202, 429]


def test_wrong_keys_are_limited_per_address(migrated: SettingsFactory) -> None:
    with TestClient(create_app(migrated(api_keys=KEY, auth_failures_per_minute=5))) as client:
        body = {"feature": "Guessing"}
        codes = [
            client.post("/api/stories", json=body, headers=_bearer(f"guess-{n}")).status_code
            for n in range(8)
        ]
        assert codes == [401] * 5 + [429] * 3
        locked = client.post("/api/stories", json=body, headers=_bearer("guess-9"))
        assert int(locked.headers["retry-after"]) >= 1
        assert "too many failed API-key checks from this address" in locked.json()["detail"]
        # While locked out, the right key gets 429 too: otherwise 202 would tell a right guess.
        assert client.post("/api/stories", json=body, headers=_bearer(KEY)).status_code == 429
        assert client.delete(f"/api/stories/{'0' * 32}", headers=_bearer(KEY)).status_code == 429
        # Reads need no key and are not locked.
        assert client.get("/api/stories").status_code == 200
        assert 'rate_limited_total{scope="auth"} 6.0' in client.get("/metrics").text


def test_the_default_failure_limit_stops_fast_guessing(migrated: SettingsFactory) -> None:
    with TestClient(create_app(migrated(api_keys=KEY))) as client:
        codes = [
            client.post(
                "/api/stories", json={"feature": "Guessing"}, headers=_bearer(f"g{n}")
            ).status_code
            for n in range(60)
        ]
        assert codes.count(401) == 10 and codes.count(429) == 50


def test_right_keys_do_not_use_up_the_failure_budget(migrated: SettingsFactory) -> None:
    with TestClient(create_app(migrated(api_keys=KEY, auth_failures_per_minute=2))) as client:
        for _ in range(5):
            ok = client.post("/api/stories", json={"feature": "Mine"}, headers=_bearer(KEY))
            assert ok.status_code == 202
        assert client.post("/api/stories", json={"feature": "x y z"}).status_code == 401


@pytest.mark.parametrize(
    ("trusted", "spoofing_helps"), [("testclient", True), ("127.0.0.1", False)]
)
def test_failed_checks_are_counted_per_client_address(
    migrated: SettingsFactory, trusted: str, spoofing_helps: bool
) -> None:
    """The address is the one uvicorn derives (as `python -m service` runs it): X-Forwarded-For
    counts only when the peer is in FORWARDED_ALLOW_IPS."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    app = create_app(migrated(api_keys=KEY, auth_failures_per_minute=2))
    # TestClient connects from the peer "testclient": trusted as a proxy, or not.
    with TestClient(ProxyHeadersMiddleware(app, trusted_hosts=trusted)) as client:

        def post(forwarded_for: str, key: str) -> int:
            headers = {**_bearer(key), "X-Forwarded-For": forwarded_for}
            return client.post(
                "/api/stories", json={"feature": "Mine"}, headers=headers
            ).status_code

        assert [post("203.0.113.7", "bad") for _ in range(3)] == [401, 401, 429]
        # Another client behind the trusted proxy has its own budget; behind an untrusted
        # peer, a made-up X-Forwarded-For changes nothing.
        expected = [401, 202] if spoofing_helps else [429, 429]
        assert [post("203.0.113.8", "bad"), post("203.0.113.8", KEY)] == expected


def test_bucket_wait_does_not_take_a_token() -> None:
    limiter = RateLimiter(per_minute=60)
    assert limiter.wait("a", now=0.0) == 0
    assert all(limiter.acquire("a", now=0.0) == 0 for _ in range(60))
    assert limiter.wait("a", now=0.0) == pytest.approx(1.0)
    assert limiter.wait("a", now=0.5) == pytest.approx(0.5)
    assert limiter.wait("a", now=1.0) == 0
    assert limiter.acquire("a", now=1.0) == 0


def test_token_bucket_refills_over_time() -> None:
    limiter = RateLimiter(per_minute=60)
    assert all(limiter.acquire("a", now=0.0) == 0 for _ in range(60))
    assert limiter.acquire("a", now=0.0) == pytest.approx(1.0)
    assert limiter.acquire("a", now=1.0) == 0
    assert limiter.acquire("b", now=1.0) == 0


def test_a_flood_of_new_addresses_stays_bounded_and_o1() -> None:
    """New addresses arrive at just the pace at which one bucket a request becomes full again:
    the limiter must neither grow past its bound nor rescan every bucket per request (which
    takes most of an hour for this loop)."""
    limiter = RateLimiter(per_minute=5, max_clients=20_000)
    step = 60.0 / 19_999.5
    hang_guard = time.monotonic() + 60  # an upper bound for a hang, not a timing assertion
    for n in range(150_000):
        assert limiter.acquire(f"ip:{n}", now=n * step) == 0
        assert len(limiter) <= 20_000
        if n % 1000 == 0:
            assert time.monotonic() < hang_guard, f"only {n} addresses done"


def test_the_active_clients_gauge_stays_bounded_and_o1_under_a_flood() -> None:
    """The gauge saw every request's address and, once full, rescanned all of them for each
    new one."""
    from service.metrics import ActiveClients

    now = [0.0]
    clients = ActiveClients(max_clients=20_000, clock=lambda: now[0])
    hang_guard = time.monotonic() + 60  # an upper bound for a hang, not a timing assertion
    for n in range(150_000):
        now[0] = n * 0.001  # 150 s in all: inside the five-minute window
        clients.touch(f"203.0.{n // 256 % 256}.{n % 256}-{n}")
        if n % 1000 == 0:
            assert time.monotonic() < hang_guard, f"only {n} addresses done"
    assert clients.count() == 20_000
    now[0] += 301
    clients.touch("late")
    assert clients.count() == 1


def test_a_flood_of_new_addresses_does_not_reset_an_active_client() -> None:
    limiter = RateLimiter(per_minute=3, max_clients=1000)
    assert [limiter.acquire("ip:abuser", now=0.0) for _ in range(3)] == [0, 0, 0]
    for n in range(5000):
        limiter.acquire(f"ip:{n}", now=1.0)
        if n % 100 == 0:
            assert limiter.acquire("ip:abuser", now=1.0) > 0, n
    assert len(limiter) == 1000


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:0:1::1", "2001:db8:0:1::/64"),
        ("2001:db8:0:1:ffff:ffff:ffff:ffff", "2001:db8:0:1::/64"),
        ("2001:DB8:0:1:0:0:0:2", "2001:db8:0:1::/64"),
        ("2001:db8:0:2::1", "2001:db8:0:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("testclient", "testclient"),
    ],
)
def test_rate_limits_key_ipv6_clients_by_their_64(address: str, key: str) -> None:
    assert address_key(address) == key


def test_one_ipv6_64_shares_one_read_budget(migrated: SettingsFactory) -> None:
    """Through uvicorn's proxy-header handling, as `python -m service` runs it."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    app = create_app(migrated(read_rate_limit_per_minute=2))
    with TestClient(ProxyHeadersMiddleware(app, trusted_hosts="testclient")) as client:

        def read(address: str) -> int:
            return client.get("/api/stories", headers={"X-Forwarded-For": address}).status_code

        assert [read("2001:db8:0:1::1"), read("2001:db8:0:1::2")] == [200, 200]
        assert read("2001:db8:0:1:abcd::9") == 429
        assert read("2001:db8:0:2::1") == 200
        assert [read("203.0.113.7"), read("::ffff:203.0.113.7"), read("203.0.113.7")] == [
            200,
            200,
            429,
        ]


def test_operations_endpoints_have_a_per_address_budget(migrated: SettingsFactory) -> None:
    settings = migrated(ops_rate_limit_per_minute=3)
    with TestClient(create_app(settings)) as client:
        assert [client.get(p).status_code for p in ("/readyz", "/metrics", "/openapi.json")] == [
            200,
            200,
            200,
        ]
        for path in ("/readyz", "/metrics", "/openapi.json", "/docs"):
            limited = client.get(path)
            assert limited.status_code == 429, path
            assert int(limited.headers["retry-after"]) >= 1
        # Liveness is never limited: a 429 there would restart the pod.
        assert all(client.get("/healthz").status_code == 200 for _ in range(20))
        assert client.get("/api/stories").status_code == 200


def test_the_default_operations_budget_leaves_room_for_probes(client: TestClient) -> None:
    """A kubelet probes readiness every few seconds and Prometheus scrapes every 15 s or so:
    far below the default budget, even for both together from one address."""
    codes = {client.get(path).status_code for path in ("/readyz", "/metrics") * 150}
    assert codes == {200}


def test_cors_only_for_configured_origins(migrated: SettingsFactory) -> None:
    with TestClient(create_app(migrated(cors_origins="https://app.example.com"))) as client:
        allowed = client.options(
            "/api/stories",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
        denied = client.get("/api/stories", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in denied.headers
        preflight = client.options(
            "/api/stories",
            headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 400


def test_no_cors_headers_without_configured_origins(client: TestClient) -> None:
    response = client.get("/api/stories", headers={"Origin": "https://app.example.com"})
    assert "access-control-allow-origin" not in response.headers


def test_secrets_never_reach_the_logs(
    migrated: SettingsFactory, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_api = "sk-ant-secret-value-do-not-log"
    settings = migrated(
        api_keys=KEY,
        anthropic_api_key=secret_api,
        anthropic_base_url="http://127.0.0.1:9",
        anthropic_max_attempts=1,
        log_level="debug",
    )
    with TestClient(create_app(settings)) as client:
        client.post(
            "/api/stories",
            json={"feature": "Log hygiene"},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        client.post(
            "/api/stories", json={"feature": "x"}, headers={"Authorization": "Bearer wrong"}
        )
        client.get("/api/stories")
    logged = capsys.readouterr().out + caplog.text
    assert "service started" in logged
    assert secret_api not in logged
    assert KEY not in logged
    assert "wrong" not in logged
    assert secret_api not in repr(settings)


def test_request_id_is_echoed_and_logged(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert len(generated.headers["x-request-id"]) == 32
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    access = [line for line in lines if line["logger"] == "service.access"]
    assert any(line.get("request_id") == "abc-123" and line["status"] == 200 for line in access)
