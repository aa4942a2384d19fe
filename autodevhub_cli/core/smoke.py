"""Smoke checks against a deployed release, with httpx: each reachable component's probe paths,
then the checks the project declares under `smoke.checks` (one request with an expected answer,
a latency budget over N requests, or a sequence that captures values from one answer for the
next). Each check retries until a shared deadline while the rollout settles; the result lists
every check with its outcome and timing.

Nothing a server does holds a run past its deadline: every request ends by the deadline of its
check (the run's deadline, plus the `poll.timeout_seconds` its steps declare; a check that
starts after the run's deadline still gets one attempt of up to LATE_CHECK_SECONDS), reads at
most `adapters.http.MAX_BODY_BYTES` of an answer, and a latency check stops when its deadline
comes or its budget can no longer be met. Every text the result carries (names, details, URLs)
passes through one `Redactor`, so secrets never reach the table, the JSON, errors or records.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TypedDict

from autodevhub_cli.core.adapters.http import Answer, HttpClient, RequestFailed
from autodevhub_cli.core.environment import (
    Environment,
    Expect,
    SmokeCheck,
    Step,
    placeholders,
    substitute,
)
from autodevhub_cli.core.errors import ConfigError
from autodevhub_cli.core.redact import (
    MASK,
    Redactor,
    header_secrets,
    is_secret_name,
    url_secrets,
)

log = logging.getLogger("autodevhub.smoke")
Reporter = Callable[[str, str], None]
Probe = Callable[[float], str]  # runs a check once, by the deadline it is given

# A check that starts once the run's deadline has passed still gets one attempt this long (or
# the run's whole timeout when that is shorter).
LATE_CHECK_SECONDS = 10.0
MAX_TIMEOUT_SECONDS = 86400.0


def check_timeout(seconds: float, option: str) -> float:
    """`seconds` when it is a usable deadline (finite, above 0, at most a day); else ConfigError
    naming `option`. NaN or infinity would make every deadline unreachable."""
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_TIMEOUT_SECONDS):
        raise ConfigError(
            f"{option} {seconds:g} is not a usable number of seconds: give a number greater "
            f"than 0 and at most {MAX_TIMEOUT_SECONDS:.0f} (a day), such as {option} 60."
        )
    return seconds


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

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"ok": self.ok, "urls": self.urls, "checks": [asdict(c) for c in self.checks]}

    def summary(self) -> str:
        """One line per failed check, for error messages."""
        return "; ".join(f"{c.name}: {c.detail}" for c in self.failed)


# Answers of a release that is still settling: a proxy without a ready upstream, a readiness 503.
SETTLING_STATUSES = frozenset({502, 503, 504})


class _RequestOptions(TypedDict, total=False):
    """What a step's request is sent with (`HttpClient.request`'s keyword arguments)."""

    headers: dict[str, str]
    deadline: float
    shown: str
    json_body: object
    content: str


class _Failed(Exception):
    """A check's answer was wrong. `settling` answers (and connection errors) are retried until
    the deadline; any other wrong answer fails the check once it repeats `confirm_attempts`
    times in a row (`signature` says which answers are the same, whatever ids they carry)."""

    def __init__(
        self,
        message: str,
        *,
        settling: bool = False,
        signature: str | None = None,
        unresolved: bool = False,
    ):
        super().__init__(message)
        self.settling = settling
        self.signature = signature or message
        self.unresolved = unresolved


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
    secrets: Iterable[str] = (),
) -> SmokeResult:
    """Run every smoke check of `environment` against `endpoints`; never raises for a failed
    check. Components without an endpoint get no probe checks; a declared check on one fails.
    `secrets` are more values to keep out of the result (a Secret's new value)."""
    spec = environment.smoke
    budget = check_timeout(timeout, "--timeout") if timeout is not None else spec.timeout_seconds
    hide = _redactor(environment, endpoints, secrets)
    say = report or (lambda _n, _m: None)
    run_deadline = time.monotonic() + budget
    late = min(budget, LATE_CHECK_SECONDS)
    result = SmokeResult({name: hide.url(e.url.rstrip("/")) for name, e in endpoints.items()})
    with HttpClient() as client:
        runner = _Runner(client, _headers(spec.headers, hide), hide)
        checks = _probe_checks(environment, endpoints, runner) if spec.probes else []
        for check in spec.checks:
            endpoint = endpoints.get(check.component)
            # A step that polls declares how long its work may take: the check gets that too.
            polls = sum(s.poll.timeout_seconds for s in check.requests() if s.poll)
            checks.append((check.name, runner.declared(check, endpoint), polls))
        for name, probe, polls in checks:
            shown = hide(name)
            say(shown, "checking")
            deadline = max(run_deadline, time.monotonic() + late) + polls
            outcome = _retry(shown, probe, deadline, spec.confirm_attempts, hide)
            say(shown, ("ok: " if outcome.ok else "FAILED: ") + outcome.detail)
            result.checks.append(outcome)
    return result


def _redactor(
    environment: Environment, endpoints: Mapping[str, Endpoint], secrets: Iterable[str]
) -> Redactor:
    """What this run must not show: the values of the variables its checks expand and its
    components read as secrets, secret headers, URL userinfo, and `secrets`."""
    hide = Redactor(secrets)
    spec = environment.smoke
    names = {n for n in os.environ if n.startswith("AUTODEVHUB__") and is_secret_name(n)}
    for component in environment.components.values():
        names.update(component.secret_env)  # set in this shell too, the value is the secret
    headers = list(spec.headers.items())
    texts = list(spec.headers.values())
    for check in spec.checks:
        for step in check.requests():
            texts += [text for _field, text in step.texts()]
            headers += step.headers.items()
    for key, value in headers:
        if "${" not in value:  # a literal credential; expanded ones are added as they are sent
            hide.add(*header_secrets(key, value))
    names.update(n[4:] for text in texts for n in placeholders(text) if n.startswith("env:"))
    hide.add_environment(names, os.environ)
    urls = [e.url for e in endpoints.values()] + [*spec.urls.values(), *spec.preview_urls.values()]
    for url in urls:
        hide.add(*url_secrets(url))
    return hide


def _probe_checks(
    environment: Environment, endpoints: Mapping[str, Endpoint], runner: _Runner
) -> list[tuple[str, Probe, float]]:
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
            checks.append((f"{name} {kind} {probe.path}", runner.steps(endpoint, [step]), 0.0))
    return checks


def _headers(declared: Mapping[str, str], hide: Redactor) -> dict[str, str]:
    """Headers with ${env:NAME} filled in; a header whose variable is unset is left out."""
    out = {}
    for key, value in declared.items():
        names = [n[4:] for n in placeholders(value) if n.startswith("env:")]
        if all(os.environ.get(n) for n in names):
            out[key] = substitute(value, {f"env:{n}": os.environ[n] for n in names})
            hide.add(*header_secrets(key, out[key]))
    return out


class _Runner:
    """Runs check steps against an endpoint with one HTTP client."""

    def __init__(self, client: HttpClient, headers: dict[str, str], hide: Redactor) -> None:
        self.client = client
        self.headers = headers
        self.hide = hide

    def declared(self, check: SmokeCheck, endpoint: Endpoint | None) -> Probe:
        """The probe for one of the project's checks."""
        if endpoint is None:

            def unreachable(_deadline: float) -> str:
                raise _Failed(
                    f"component {check.component!r} has no URL this runner reaches (publish a "
                    f"port, add an ingress path, set smoke.urls.{check.component} or pass "
                    f"--url {check.component}=URL)"
                )

            return unreachable
        probe: Probe
        if check.latency is not None:

            def probe(deadline: float) -> str:
                return self.latency(endpoint, check, deadline)
        else:
            probe = self.steps(endpoint, check.requests())

        def named(deadline: float) -> str:
            try:
                return probe(deadline)
            except _Failed as exc:
                if not exc.unresolved:
                    raise
                raise _Failed(
                    f"{exc}; set smoke.urls.{check.component} (or pass --url "
                    f"{check.component}=URL) to an address this runner reaches, or turn on "
                    "smoke.port_forward on Kubernetes",
                    signature=exc.signature,
                    unresolved=True,
                ) from None

        return named

    def steps(self, endpoint: Endpoint, steps: list[Step]) -> Probe:
        """A probe running `steps` in order, passing captured values along."""

        def probe(deadline: float) -> str:
            started = time.monotonic()
            captured: dict[str, str] = {}
            last = ""
            for step in steps:
                last = self.step(endpoint, step, captured, deadline)
            note = f" ({endpoint.note})" if endpoint.note else ""
            if len(steps) == 1:
                return last + note
            return f"{len(steps)} requests in {time.monotonic() - started:.2f}s{note}; last: {last}"

        return probe

    def step(
        self, endpoint: Endpoint, step: Step, captured: dict[str, str], deadline: float
    ) -> str:
        """One request (repeated while polling, until the deadline); checks the answer;
        captures values. What the messages show has the expanded variables masked."""
        values = dict(captured)
        shown_values = {k: MASK if is_secret_name(k) else v for k, v in captured.items()}
        for _field, text in step.texts():
            for name in placeholders(text):
                if name.startswith("env:"):
                    if name[4:] not in os.environ:
                        raise _Failed(f"environment variable {name[4:]} is not set")
                    values[name] = os.environ[name[4:]]
                    shown_values[name] = MASK
                    self.hide.add(values[name])
        base = endpoint.url.rstrip("/")
        url = base + substitute(step.path, values)
        shown = self.hide.url(base + substitute(step.path, shown_values))
        headers = {**self.headers, **{k: substitute(v, values) for k, v in step.headers.items()}}
        for key, value in headers.items():
            self.hide.add(*header_secrets(key, value))
        body = _fill(step.body, values)
        kwargs: _RequestOptions = {"headers": headers, "deadline": deadline, "shown": shown}
        if isinstance(body, (dict, list)):
            kwargs["json_body"] = body
        elif body is not None:
            kwargs["content"] = str(body)
        poll = step.poll
        poll_deadline = min(deadline, time.monotonic() + (poll.timeout_seconds if poll else 0))
        started = time.monotonic()
        while True:
            response = self._send(step, shown, url, kwargs)
            if poll is None or response.status_code != step.expect.status:
                break
            data = _json(response, step.method, shown)
            if _matches(data, poll.fail_when):
                raise _Failed(f"{step.method} {shown} answered {_shown(data, poll.fail_when)}")
            # The last answer before the poll's deadline is the one judged: no request at it.
            if (
                _matches(data, poll.until)
                or time.monotonic() + poll.interval_seconds >= poll_deadline
            ):
                break
            time.sleep(poll.interval_seconds)
        _expect(response, step, shown)
        if poll and not _matches(_json(response, step.method, shown), poll.until):
            data = _json(response, step.method, shown)
            raise _Failed(
                f"{step.method} {shown} still answered {_shown(data, poll.until)} after "
                f"{time.monotonic() - started:.0f}s (waiting for {poll.until})"
            )
        if step.capture:
            data = _json(response, step.method, shown)
            for name, path in step.capture.items():
                found, answered = _lookup(data, path)
                if not found:
                    raise _Failed(f"{step.method} {shown}: the answer has no field {path!r}")
                captured[name] = str(answered)
                if is_secret_name(name):
                    self.hide.add(captured[name])
        elapsed = (time.monotonic() - started) * 1000
        return f"{step.method} {shown} {response.status_code} in {elapsed:.0f} ms"

    def _send(self, step: Step, shown: str, url: str, kwargs: _RequestOptions) -> Answer:
        try:
            return self.client.request(step.method, url, **kwargs)
        except RequestFailed as exc:
            raise _Failed(
                f"{step.method} {shown}: {exc}",
                settling=exc.settling,
                signature=f"{step.method} {step.path} {exc}",
                unresolved=exc.unresolved,
            ) from None

    def latency(self, endpoint: Endpoint, check: SmokeCheck, deadline: float) -> str:
        """The check's request N times; its percentile must be within the budget. Stops at the
        deadline, and as soon as so many requests were over the budget that it cannot be met."""
        assert check.latency is not None
        budget = check.latency
        step = check.requests()[0]
        # This many of the N samples may be over the budget with the percentile still within.
        allowed_over = budget.samples - math.ceil(budget.percentile / 100 * budget.samples)
        samples: list[float] = []
        over = 0
        for _ in range(budget.samples):
            if time.monotonic() >= deadline:
                break
            started = time.perf_counter()
            try:
                self.step(endpoint, step, {}, deadline)
            except _Failed:
                if time.monotonic() < deadline:
                    raise
                break  # the deadline came during this request
            samples.append((time.perf_counter() - started) * 1000)
            over += samples[-1] > budget.budget_ms
            if over > allowed_over:
                break
        name = f"p{budget.percentile}"
        limit = f"the {budget.budget_ms:.0f} ms budget"
        if not samples:
            raise _Failed(
                f"no request finished before the deadline (0 of {budget.samples} samples "
                f"taken); {limit} cannot be checked",
                settling=True,
            )
        value = sorted(samples)[max(0, math.ceil(budget.percentile / 100 * len(samples)) - 1)]
        taken = f"{len(samples)} of {budget.samples} samples taken"
        if over > allowed_over:
            # A release warming up is slow at first: retried until the deadline.
            raise _Failed(
                f"{over} requests took longer than {limit}, so the {name} of {budget.samples} "
                f"cannot be within it ({taken}; {name} so far {value:.1f} ms)",
                settling=True,
            )
        if len(samples) < budget.samples:
            raise _Failed(
                f"the deadline came before the latency check finished ({taken}; {name} so far "
                f"{value:.1f} ms, {limit})",
                settling=True,
            )
        what = f"{name} {value:.1f} ms over {len(samples)} requests"
        if value > budget.budget_ms:
            raise _Failed(f"{what} is above {limit}", settling=True)
        return f"{what} (budget {budget.budget_ms:.0f} ms)"


def _fill(value: object, values: Mapping[str, str]) -> object:
    if isinstance(value, str):
        return substitute(value, values)
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    return value


def _json(response: Answer, method: str, url: str) -> object:
    try:
        return response.json()
    except ValueError:
        raise _Failed(f"{method} {url} did not answer JSON: {response.text[:120]!r}") from None


def _lookup(data: object, path: str) -> tuple[bool, object]:
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


def _matches(data: object, wanted: Mapping[str, object]) -> bool:
    return bool(wanted) and all(_lookup(data, k) == (True, v) for k, v in wanted.items())


def _shown(data: object, wanted: Mapping[str, object]) -> str:
    return ", ".join(f"{k}={json.dumps(_lookup(data, k)[1])}" for k in wanted)


def _printable(text: str) -> str:
    """A server's text on one line, control characters (terminal escapes) spelled out."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _expect(response: Answer, step: Step, url: str) -> None:
    expect = step.expect
    if response.status_code != expect.status:
        text = _printable(response.text.strip().replace("\n", " ")[:160])
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
    name: str,
    probe: Probe,
    deadline: float,
    confirm_attempts: int = 3,
    hide: Callable[[str], str] = str,
) -> CheckResult:
    """Run `probe` until it passes, the deadline passes, or it gives the same wrong answer
    `confirm_attempts` times in a row (the release is up and wrong: fail at once). The
    result's detail has passed through `hide`."""
    started = time.monotonic()
    attempts, delay, detail = 0, 0.25, ""
    same, last = 0, None
    unresolved = False
    while True:
        attempts += 1
        try:
            detail = hide(probe(deadline))
            return CheckResult(name, True, detail, time.monotonic() - started, attempts)
        except _Failed as exc:
            detail = hide(str(exc))
            unresolved = exc.unresolved
            if exc.settling:
                same, last = 0, None
            else:
                same = same + 1 if exc.signature == last else 1
                last = exc.signature
        if same >= confirm_attempts:
            detail += (
                f" ({same} tries)"
                if unresolved
                else f" (the same answer {same} times in a row: up and wrong, not settling)"
            )
            return CheckResult(name, False, detail, time.monotonic() - started, attempts)
        if time.monotonic() + delay > deadline:
            return CheckResult(name, False, detail, time.monotonic() - started, attempts)
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
