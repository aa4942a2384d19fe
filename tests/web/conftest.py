"""Fixtures for the web tests: the real backend, nginx with the image's config, headless Chromium."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# web_servers is shared with bench/web_perf.py; importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from web_servers import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    Running,
    build_dist,
    missing_browser_tools,
    run_backend,
    run_nginx,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="session")
def browser_tools() -> None:
    """Skip (a failure in CI) when Chromium, nginx, Playwright or Node is missing."""
    missing = missing_browser_tools()
    if missing:
        pytest.skip(
            "browser tools missing: "
            + ", ".join(missing)
            + " (run bash scripts/ci/provision-browser.sh)"
        )


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """artifacts/ at the repo root, where screenshots and measurements go."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def backend(browser_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The real backend (python -m service) on SQLite with the offline generator."""
    with run_backend(tmp_path_factory.mktemp("backend")) as running:
        yield running


@pytest.fixture(scope="session")
def dist(browser_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The production build of the front end."""
    out = tmp_path_factory.mktemp("dist") / "dist"
    result = build_dist(out)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def site(dist: Path, backend: Running, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of nginx serving the build and proxying /api to the backend."""
    with run_nginx(dist, f"127.0.0.1:{backend.port}", tmp_path_factory.mktemp("nginx")) as nginx:
        yield nginx.url


@pytest.fixture(scope="session")
def browser(browser_tools: None) -> Iterator[Browser]:
    """Headless Debian Chromium driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest, artifacts: Path) -> Iterator[Any]:
    """A fresh browser context and page; a failing test leaves a screenshot in artifacts/."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )
    page.js_errors = errors  # type: ignore[attr-defined]
    yield page
    if getattr(request.node, "rep_call_failed", False):
        with contextlib.suppress(Exception):
            page.screenshot(path=str(artifacts / f"failed-{request.node.name}.png"), full_page=True)
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call" and report.failed:
        item.rep_call_failed = True  # type: ignore[attr-defined]
