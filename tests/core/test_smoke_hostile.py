"""Smoke checks against a hostile server end by their deadline and read a bounded answer: a server
that drips its answer a byte at a time, never ends its body, or answers slowly to a latency check
with many samples fails the check in about the deadline, saying why."""

from __future__ import annotations

import math
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from autodevhub_cli.core.adapters.http import MAX_BODY_BYTES
from autodevhub_cli.core.config import load_environment
from autodevhub_cli.core.errors import ConfigError
from autodevhub_cli.core.project import find_project
from autodevhub_cli.core.smoke import Endpoint, run_smoke_checks
from tests.helpers import copy_project
from tests.hostile_http import HostileServer

# A check with a 2 s deadline must end well within this (generous: proves "does not hang").
ENDS_WITHIN = 10.0


@pytest.fixture()
def hostile() -> Iterator[HostileServer]:
    server = HostileServer()
    yield server
    server.close()


def _environment(tmp_path: Path, checks: str) -> object:
    project = find_project(copy_project(tmp_path / "project"))
    return load_environment(
        project,
        "dev",
        ["smoke.probes=false", "smoke.timeout_seconds=60", f"smoke.checks={checks}"],
        environ={},
    )


HANGS = [
    pytest.param(
        "path: '/drip?every=0.5'",
        ["GET http://127.0.0.1:", "/drip?every=0.5: no complete answer within the deadline"],
        id="drips-the-whole-answer",
    ),
    pytest.param(
        "path: '/drip-body?every=0.5'",
        ["no complete answer within the deadline", "bytes of body read"],
        id="drips-the-body",
    ),
    pytest.param(
        "path: '/slow?seconds=30'",
        ["no complete answer within the deadline"],
        id="answers-after-the-deadline",
    ),
    pytest.param(
        "path: /endless",
        [f"the answer's body exceeded {MAX_BODY_BYTES} bytes", "the same answer 3 times"],
        id="endless-body",
    ),
    pytest.param(
        "path: /endless-chunked",
        [f"the answer's body exceeded {MAX_BODY_BYTES} bytes"],
        id="endless-chunked-body",
    ),
    pytest.param(
        "path: '/slow?seconds=0.3', latency: {samples: 1000, percentile: 95, budget_ms: 50}",
        ["the deadline came before the latency check finished", "of 1000 samples taken"],
        id="latency-with-many-samples",
    ),
    pytest.param(
        "path: '/slow?seconds=0.2', latency: {samples: 20, percentile: 95, budget_ms: 50}",
        ["2 requests took longer than the 50 ms budget", "p95 of 20 cannot be within it"],
        id="latency-budget-out-of-reach",
    ),
]


@pytest.mark.parametrize(("request_", "words"), HANGS)
def test_a_hostile_answer_fails_the_check_by_its_deadline(
    hostile: HostileServer, tmp_path: Path, request_: str, words: list[str]
) -> None:
    env = _environment(tmp_path, f"[{{name: hostile, component: frontend, {request_}}}]")
    started = time.monotonic()
    result = run_smoke_checks(env, {"frontend": Endpoint(hostile.url)}, timeout=2)
    elapsed = time.monotonic() - started
    assert elapsed < ENDS_WITHIN, f"took {elapsed:.1f}s with a 2 s deadline"
    check = result.checks[0]
    assert not check.ok
    for word in words:
        assert word in check.detail, check.detail


def test_an_endless_body_is_read_in_bounded_memory(hostile: HostileServer, tmp_path: Path) -> None:
    env = _environment(tmp_path, "[{name: endless, component: frontend, path: /endless}]")
    tracemalloc.start()
    try:
        result = run_smoke_checks(env, {"frontend": Endpoint(hostile.url)}, timeout=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not result.ok
    assert peak < 4 * MAX_BODY_BYTES, f"peak {peak} bytes"


def test_every_check_after_the_deadline_is_bounded_too(
    hostile: HostileServer, tmp_path: Path
) -> None:
    # The first check uses up the run's deadline; the others still get one bounded attempt.
    check = "{{name: drip {n}, component: frontend, path: '/drip?every=0.4'}}"
    checks = "[" + ", ".join(check.format(n=n) for n in range(3)) + "]"
    env = _environment(tmp_path, checks)
    started = time.monotonic()
    result = run_smoke_checks(env, {"frontend": Endpoint(hostile.url)}, timeout=1)
    assert time.monotonic() - started < 3 * ENDS_WITHIN / 2
    assert [c.ok for c in result.checks] == [False, False, False]
    assert all(c.seconds < 5 for c in result.checks), [c.seconds for c in result.checks]


@pytest.mark.parametrize(("done_after", "ok"), [(2.0, True), (60.0, False)])
def test_a_polling_check_gets_its_poll_time_and_no_more(
    hostile: HostileServer, tmp_path: Path, done_after: float, ok: bool
) -> None:
    # The run's deadline is 1 s; the poll may take 3 s more: slow work that ends in time
    # passes, work that never ends fails once those 3 s are over.
    checks = (
        "[{name: work, component: frontend, steps: [{path: '/progress?done_after="
        f"{done_after}', poll: {{until: {{state: done}}, interval_seconds: 0.2, "
        "timeout_seconds: 3}}]}]"
    )
    started = time.monotonic()
    result = run_smoke_checks(
        _environment(tmp_path, checks), {"frontend": Endpoint(hostile.url)}, timeout=1
    )
    assert time.monotonic() - started < ENDS_WITHIN
    assert result.ok is ok, result.summary()
    if not ok:
        assert 'still answered state="running"' in result.checks[0].detail


def test_a_passing_latency_check_reports_its_samples(
    hostile: HostileServer, tmp_path: Path
) -> None:
    checks = "[{name: fast, component: frontend, path: /, latency: {samples: 5, budget_ms: 2000}}]"
    result = run_smoke_checks(_environment(tmp_path, checks), {"frontend": Endpoint(hostile.url)})
    assert result.ok, result.summary()
    assert "over 5 requests (budget 2000 ms)" in result.checks[0].detail


@pytest.mark.parametrize("timeout", [math.nan, math.inf, -math.inf, -1.0, 0.0, 1e12])
def test_an_unusable_timeout_is_refused(tmp_path: Path, timeout: float) -> None:
    env = _environment(tmp_path, "[{name: page, component: frontend, path: /}]")
    with pytest.raises(ConfigError, match=r"--timeout .* is not a usable number of seconds"):
        run_smoke_checks(env, {"frontend": Endpoint("http://127.0.0.1:9")}, timeout=timeout)
