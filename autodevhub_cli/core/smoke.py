"""Smoke checks against a deployed release, with httpx: each reachable component's probe paths,
then the checks the project declares under `smoke.checks` (one request with an expected answer,
a latency budget over N requests, or a sequence that captures values from one answer for the
next). Each check retries until a shared deadline while the rollout settles; the result lists
every check with its outcome and timing.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from autodevhub_cli.core.environment import (
    Environment,
    Expect,
    SmokeCheck,
    Step,
    placeholders,
    substitute,
)

log = logging.getLogger("autodevhub.smoke")
Reporter = Callable[[str, str], None]


@dataclass(frozen=True)
class Endpoint:
    """Where the runner reaches a component: its own URL, or an entry point shared with other
    components that routes by path (an Ingress)."""

    url: str
    shared: bool = False
    note: str = ""


Endpoints = dict[str, Endpoint]


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

    urls: dict[str, str]
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
        return {"ok": self.ok, "urls": self.urls, "checks": [asdict(c) for c in self.checks]}

    def summary(self) -> str:
        """One line per failed check, for error messages."""
        return "; ".join(f"{c.name}: {c.detail}" for c in self.failed)


# Answers of a release that is still settling: a proxy without a ready upstream, a readiness 503.
SETTLING_STATUSES = frozenset({502, 503, 504})


class _Failed(Exception):
    """A check's answer was wrong. `settling` answers (and connection errors) are retried until
    the deadline; any other wrong answer fails the check once it repeats `confirm_attempts`
    times in a row (`signature` says which answers are the same, whatever ids they carry)."""

    def __init__(self, message: str, *, settling: bool = False, signature: str | None = None):
        super().__init__(message)
        self.settling = settling
        self.signature = signature or message


def configured_endpoints(environment: Environment, preview: bool) -> Endpoints:
    """The URLs the environment file gives (`smoke.urls`, and `smoke.preview_urls` for the
    blue-green components when their preview is checked)."""
    spec = environment.smoke
    found = {name: Endpoint(url) for name, url in spec.urls.items()}
    if preview:
        for name in environment.blue_green():
            if name in spec.preview_urls:
                found[name] = Endpoint(spec.preview_urls[name], note="the preview")
    return found


def routed_to(environment: Environment, path: str) -> str | None:
    """The component an Ingress sends `path` to: the longest matching declared prefix."""
    best: tuple[int, str] | None = None
    for name, component in environment.components.items():
        for route in component.expose.ingress:
            prefix = route.path.rstrip("/")
            matches = path == prefix or path.startswith(prefix + "/") or prefix == ""
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), name)
    return best[1] if best else None


def run_smoke_checks(
    environment: Environment,
    endpoints: Mapping[str, Endpoint],
    report: Reporter | None = None,
    timeout: float | None = None,
) -> SmokeResult:
    """Run every smoke check of `environment` against `endpoints`; never raises for a failed
    check. Components without an endpoint get no probe checks; a declared check on one fails."""
    import httpx

    say = report or (lambda _n, _m: None)
    spec = environment.smoke
    deadline = time.monotonic() + (timeout if timeout is not None else spec.timeout_seconds)
    result = SmokeResult({name: e.url.rstrip("/") for name, e in endpoints.items()})
    with httpx.Client(timeout=10, follow_redirects=False) as client:
        runner = _Runner(client, _headers(spec.headers))
        checks = _probe_checks(environment, endpoints, runner) if spec.probes else []
        for check in spec.checks:
            endpoint = endpoints.get(check.component)
            checks.append((check.name, runner.declared(check, endpoint)))
        for name, probe in checks:
            say(name, "checking")
            outcome = _retry(name, probe, deadline, spec.confirm_attempts)
            say(name, ("ok: " if outcome.ok else "FAILED: ") + outcome.detail)
            result.checks.append(outcome)
    return result


def _probe_checks(
    environment: Environment, endpoints: Mapping[str, Endpoint], runner: _Runner
) -> list[tuple[str, Callable[[], str]]]:
    """GET each component's probe paths where the runner reaches that component itself."""
    checks = []
    for name, component in environment.components.items():
        endpoint = endpoints.get(name)
        if endpoint is None:
            continue
        seen = set()
        for kind, probe in component.probe_list():
            if probe.path in seen:
                continue
            if endpoint.shared and routed_to(environment, probe.path) != name:
                continue  # the entry point sends this path to another component
            seen.add(probe.path)
            step = Step(path=probe.path, expect=Expect(status=200))
            checks.append((f"{name} {kind} {probe.path}", runner.steps(endpoint, [step])))
    return checks


def _headers(declared: Mapping[str, str]) -> dict[str, str]:
    """Headers with ${env:NAME} filled in; a header whose variable is unset is left out."""
    out = {}
    for key, value in declared.items():
        names = [n[4:] for n in placeholders(value) if n.startswith("env:")]
        if all(os.environ.get(n) for n in names):
            out[key] = substitute(value, {f"env:{n}": os.environ[n] for n in names})
    return out


class _Runner:
    """Runs check steps against an endpoint with one HTTP client."""

    def __init__(self, client: Any, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers

    def declared(self, check: SmokeCheck, endpoint: Endpoint | None) -> Callable[[], str]:
        """The probe for one of the project's checks."""
        if endpoint is None:

            def unreachable() -> str:
                raise _Failed(
                    f"component {check.component!r} has no URL this runner reaches (publish a "
                    f"port, add an ingress path, set smoke.urls.{check.component} or pass "
                    f"--url {check.component}=URL)"
                )

            return unreachable
        if check.latency is not None:
            return lambda: self.latency(endpoint, check)
        return self.steps(endpoint, check.requests())

    def steps(self, endpoint: Endpoint, steps: list[Step]) -> Callable[[], str]:
        """A probe running `steps` in order, passing captured values along."""

        def probe() -> str:
            started = time.monotonic()
            captured: dict[str, str] = {}
            last = ""
            for step in steps:
                last = self.step(endpoint, step, captured)
            note = f" ({endpoint.note})" if endpoint.note else ""
            if len(steps) == 1:
                return last + note
            return f"{len(steps)} requests in {time.monotonic() - started:.2f}s{note}; last: {last}"

        return probe

    def step(self, endpoint: Endpoint, step: Step, captured: dict[str, str]) -> str:
        """One request (repeated while polling); checks the answer; captures values."""
        values = dict(captured)
        for _field, text in step.texts():
            for name in placeholders(text):
                if name.startswith("env:"):
                    if name[4:] not in os.environ:
                        raise _Failed(f"environment variable {name[4:]} is not set")
                    values[name] = os.environ[name[4:]]
        url = endpoint.url.rstrip("/") + substitute(step.path, values)
        headers = {**self.headers, **{k: substitute(v, values) for k, v in step.headers.items()}}
        body = _fill(step.body, values)
        kwargs: dict[str, Any] = {"headers": headers}
        if isinstance(body, (dict, list)):
            kwargs["json"] = body
        elif body is not None:
            kwargs["content"] = str(body)
        poll_deadline = time.monotonic() + (step.poll.timeout_seconds if step.poll else 0)
        started = time.perf_counter()
        while True:
            response = self.client.request(step.method, url, **kwargs)
            if step.poll is None or response.status_code != step.expect.status:
                break
            data = _json(response, step.method, url)
            if _matches(data, step.poll.fail_when):
                raise _Failed(f"{step.method} {url} answered {_shown(data, step.poll.fail_when)}")
            if _matches(data, step.poll.until) or time.monotonic() >= poll_deadline:
                break
            time.sleep(step.poll.interval_seconds)
        _expect(response, step, url)
        if step.poll and not _matches(_json(response, step.method, url), step.poll.until):
            data = _json(response, step.method, url)
            raise _Failed(
                f"{step.method} {url} still answered {_shown(data, step.poll.until)} after "
                f"{step.poll.timeout_seconds:.0f}s (waiting for {step.poll.until})"
            )
        if step.capture:
            data = _json(response, step.method, url)
            for name, path in step.capture.items():
                found, value = _lookup(data, path)
                if not found:
                    raise _Failed(f"{step.method} {url}: the answer has no field {path!r}")
                captured[name] = str(value)
        elapsed = (time.perf_counter() - started) * 1000
        return f"{step.method} {url} {response.status_code} in {elapsed:.0f} ms"

    def latency(self, endpoint: Endpoint, check: SmokeCheck) -> str:
        """The check's request N times; its percentile must be within the budget."""
        assert check.latency is not None
        budget = check.latency
        step = check.requests()[0]
        samples = []
        for _ in range(budget.samples):
            started = time.perf_counter()
            self.step(endpoint, step, {})
            samples.append((time.perf_counter() - started) * 1000)
        samples.sort()
        value = samples[max(0, math.ceil(budget.percentile / 100 * len(samples)) - 1)]
        what = f"p{budget.percentile} {value:.1f} ms over {len(samples)} requests"
        if value > budget.budget_ms:
            # A release warming up is slow at first: retried until the deadline.
            raise _Failed(f"{what} is above the {budget.budget_ms:.0f} ms budget", settling=True)
        return f"{what} (budget {budget.budget_ms:.0f} ms)"


def _fill(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return substitute(value, values)
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    return value


def _json(response: Any, method: str, url: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise _Failed(f"{method} {url} did not answer JSON: {response.text[:120]!r}") from None


def _lookup(data: Any, path: str) -> tuple[bool, Any]:
    """The value at a dotted path (list items by index), and whether it is there."""
    node = data
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _matches(data: Any, wanted: Mapping[str, Any]) -> bool:
    return bool(wanted) and all(_lookup(data, k) == (True, v) for k, v in wanted.items())


def _shown(data: Any, wanted: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(_lookup(data, k)[1])}" for k in wanted)


def _expect(response: Any, step: Step, url: str) -> None:
    expect = step.expect
    if response.status_code != expect.status:
        text = response.text.strip().replace("\n", " ")[:160]
        raise _Failed(
            f"{step.method} {url} answered {response.status_code}, expected {expect.status}"
            + (f": {text}" if text else ""),
            settling=response.status_code in SETTLING_STATUSES,
            signature=f"{step.method} {step.path} {response.status_code} {text}",
        )
    if expect.contains is not None and expect.contains not in response.text:
        raise _Failed(
            f"{step.method} {url} does not contain {expect.contains!r}: "
            f"{response.text.strip()[:160]!r}",
            signature=f"{step.method} {step.path} contains {response.text[:160]}",
        )
    if expect.fields or expect.not_empty:
        data = _json(response, step.method, url)
        for path, value in expect.fields.items():
            found, actual = _lookup(data, path)
            if not found or actual != value:
                shown = json.dumps(actual) if found else "nothing"
                raise _Failed(
                    f"{step.method} {url}: {path} is {shown}, expected {json.dumps(value)}",
                    signature=f"{step.method} {step.path} {path}={shown}",
                )
        for path in expect.not_empty:
            found, actual = _lookup(data, path)
            if not found or actual in (None, "", [], {}):
                raise _Failed(
                    f"{step.method} {url}: {path} is empty",
                    signature=f"{step.method} {step.path} {path} empty",
                )


def _retry(
    name: str, probe: Callable[[], str], deadline: float, confirm_attempts: int = 3
) -> CheckResult:
    """Run `probe` until it passes, the deadline passes, or it gives the same wrong answer
    `confirm_attempts` times in a row (the release is up and wrong: fail at once)."""
    import httpx

    started = time.monotonic()
    attempts, delay, detail = 0, 0.25, ""
    same, last = 0, None
    while True:
        attempts += 1
        try:
            detail = probe()
            return CheckResult(name, True, detail, time.monotonic() - started, attempts)
        except _Failed as exc:
            detail = str(exc)
            if exc.settling:
                same, last = 0, None
            else:
                same = same + 1 if exc.signature == last else 1
                last = exc.signature
        except httpx.HTTPError as exc:
            detail = f"{type(exc).__name__}: {exc}"
            same, last = 0, None
        if same >= confirm_attempts:
            detail += f" (the same answer {same} times in a row: up and wrong, not settling)"
            return CheckResult(name, False, detail, time.monotonic() - started, attempts)
        if time.monotonic() + delay > deadline:
            return CheckResult(name, False, detail, time.monotonic() - started, attempts)
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
