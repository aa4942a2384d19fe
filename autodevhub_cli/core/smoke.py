"""Smoke checks against a deployed release, with httpx: pages, health, a story round trip,
latency, and the project's own HTTP checks. Each check retries until a shared deadline while the
rollout settles; the result lists every check with its outcome and timing.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from autodevhub_cli.core.environment import Environment, HttpCheck
from autodevhub_cli.core.errors import ConfigError

log = logging.getLogger("autodevhub.smoke")
Reporter = Callable[[str, str], None]


@dataclass
class CheckResult:
    """One check's outcome."""

    name: str
    ok: bool
    detail: str
    seconds: float
    attempts: int = 1


@dataclass
class SmokeResult:
    """All checks of one run."""

    base_url: str
    backend_url: str | None
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[CheckResult]:
        """The checks that failed."""
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ok": self.ok,
            "base_url": self.base_url,
            "backend_url": self.backend_url,
            "checks": [asdict(c) for c in self.checks],
        }

    def summary(self) -> str:
        """One line per failed check, for error messages."""
        return "; ".join(f"{c.name}: {c.detail}" for c in self.failed)


class _Failed(Exception):
    """A check's answer was wrong (retried until the deadline)."""


def run_smoke_checks(
    environment: Environment,
    base_url: str | None = None,
    backend_url: str | None = None,
    report: Reporter | None = None,
    timeout: float | None = None,
    api_url: str | None = None,
) -> SmokeResult:
    """Run every smoke check of `environment`; never raises for a failed check.

    Page checks go to `base_url` (the frontend); API checks (story round trip, latency) to
    `api_url`, which defaults to the frontend too (it proxies /api), and is the preview backend
    when a blue-green release is checked before promotion.
    """
    import httpx

    default_base, default_backend = environment.smoke_urls()
    base = (base_url or default_base or "").rstrip("/")
    backend = (backend_url or default_backend or "").rstrip("/") or None
    if not base:
        raise ConfigError(
            f"Environment {environment.name!r} has no smoke.base_url.",
            hint="Pass --base-url, or set smoke.base_url in the environment file.",
        )
    api = (api_url or base).rstrip("/")
    say = report or (lambda _n, _m: None)
    spec = environment.smoke
    deadline = time.monotonic() + (timeout if timeout is not None else spec.timeout_seconds)
    headers = {}
    if spec.api_key_env and os.environ.get(spec.api_key_env):
        headers["Authorization"] = f"Bearer {os.environ[spec.api_key_env]}"
    result = SmokeResult(base, backend)
    with httpx.Client(timeout=10, headers=headers, follow_redirects=False) as client:
        checks: list[tuple[str, Callable[[], str]]] = [
            ("frontend page", lambda: _page(client, f"{base}/")),
            ("frontend health", lambda: _ok(client, f"{base}/healthz")),
        ]
        if backend:
            checks += [
                ("backend healthz", lambda: _ok(client, f"{backend}/healthz")),
                ("backend readyz", lambda: _ok(client, f"{backend}/readyz")),
            ]
        if spec.round_trip:
            checks.append(("story round trip", lambda: _round_trip(client, api, spec)))
        checks.append(("latency p95", lambda: _latency(client, api, spec)))
        for check in spec.checks:
            target = backend if check.target == "backend" else base
            if target:
                checks.append((check.name, _custom(client, target, check)))
        for name, probe in checks:
            say(name, "checking")
            outcome = _retry(name, probe, deadline)
            say(name, ("ok: " if outcome.ok else "FAILED: ") + outcome.detail)
            result.checks.append(outcome)
    return result


def _retry(name: str, probe: Callable[[], str], deadline: float) -> CheckResult:
    import httpx

    started = time.monotonic()
    attempts, delay, detail = 0, 0.25, ""
    while True:
        attempts += 1
        try:
            detail = probe()
            return CheckResult(name, True, detail, time.monotonic() - started, attempts)
        except _Failed as exc:
            detail = str(exc)
        except httpx.HTTPError as exc:
            detail = f"{type(exc).__name__}: {exc}"
        if time.monotonic() + delay > deadline:
            return CheckResult(name, False, detail, time.monotonic() - started, attempts)
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def _status(client: Any, method: str, url: str, expected: int, **kwargs: Any) -> Any:
    response = client.request(method, url, **kwargs)
    if response.status_code != expected:
        raise _Failed(f"{method} {url} answered {response.status_code}, expected {expected}")
    return response


def _ok(client: Any, url: str) -> str:
    started = time.perf_counter()
    _status(client, "GET", url, 200)
    return f"GET {url} 200 in {(time.perf_counter() - started) * 1000:.0f} ms"


def _page(client: Any, url: str) -> str:
    response = _status(client, "GET", url, 200)
    if "<html" not in response.text.lower():
        raise _Failed(f"GET {url} is not an HTML page")
    return f"GET {url} 200 ({len(response.content)} bytes)"


def _round_trip(client: Any, base: str, spec: Any) -> str:
    started = time.monotonic()
    created = _status(
        client,
        "POST",
        f"{base}/api/stories",
        202,
        json={"feature": "Smoke check: users can export their stories as Markdown"},
    ).json()
    story_id = created["id"]
    deadline = started + spec.round_trip_timeout_seconds
    status = created.get("status")
    while status not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        status = _status(client, "GET", f"{base}/api/stories/{story_id}", 200).json()["status"]
    if status != "done":
        raise _Failed(f"story set {story_id} ended {status!r} (expected 'done')")
    got = _status(client, "GET", f"{base}/api/stories/{story_id}", 200).json()
    if not got.get("stories"):
        raise _Failed(f"story set {story_id} is done but has no stories")
    _status(client, "DELETE", f"{base}/api/stories/{story_id}", 204)
    return (
        f"{len(got['stories'])} stories by the {got.get('generator')} generator in "
        f"{time.monotonic() - started:.2f}s"
    )


def _latency(client: Any, base: str, spec: Any) -> str:
    url = f"{base}/api/stories?limit=5"
    samples = []
    for _ in range(spec.latency_samples):
        started = time.perf_counter()
        _status(client, "GET", url, 200)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[max(0, math.ceil(0.95 * len(samples)) - 1)]
    if p95 > spec.latency_budget_ms:
        raise _Failed(
            f"p95 {p95:.0f} ms over {len(samples)} GETs is above the {spec.latency_budget_ms:.0f} "
            "ms budget"
        )
    return f"p95 {p95:.1f} ms over {len(samples)} GETs (budget {spec.latency_budget_ms:.0f} ms)"


def _custom(client: Any, target: str, check: HttpCheck) -> Callable[[], str]:
    def probe() -> str:
        url = f"{target}{check.path}"
        response = _status(client, check.method, url, check.status, json=check.json_body)
        if check.contains is not None and check.contains not in response.text:
            raise _Failed(f"{check.method} {url} does not contain {check.contains!r}")
        return f"{check.method} {url} {response.status_code}"

    return probe
