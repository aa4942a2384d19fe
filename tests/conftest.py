"""Suite-wide test switches: integration markers skip locally and fail in CI."""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

INTEGRATION_MARKERS = {"docker", "postgres", "browser", "k8s", "compose"}


def integration_required() -> bool:
    """True in CI: a missing engine must fail the run, not skip quietly."""
    return os.environ.get("AUTODEVHUB_REQUIRE_INTEGRATION") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not (report.skipped and integration_required()):
        return
    marks = {m.name for m in item.iter_markers()} & INTEGRATION_MARKERS
    if marks:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        names = ", ".join(sorted(marks))
        report.longrepr = f"integration test ({names}) was skipped but CI requires it: {reason}"
