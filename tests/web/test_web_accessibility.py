"""WCAG 2.1 A/AA checks (axe-core) on the page's states, in light and dark colour schemes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def axe_script() -> Path:
    """axe.min.js as shipped in the axe-playwright-python wheel."""
    try:
        import axe_playwright_python
    except ImportError:
        pytest.skip("axe-playwright-python missing (run bash scripts/ci/provision-browser.sh)")
    return Path(axe_playwright_python.__file__).with_name("axe.min.js")


def violations(page: Any) -> list[str]:
    """axe-core's WCAG A/AA violations on the current page, one line each."""
    page.add_script_tag(path=str(axe_script()))
    result = page.evaluate(
        "(tags) => axe.run(document, { runOnly: { type: 'tag', values: tags } })", AXE_TAGS
    )
    assert len(result["passes"]) > 10  # axe really ran its rules
    return [
        f"{v['id']} ({v['impact']}): {v['help']} -> {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
    ]


@pytest.fixture(params=["light", "dark"])
def axe_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    # Injecting axe needs the CSP bypassed; the app itself is checked under CSP elsewhere.
    context = browser.new_context(bypass_csp=True, color_scheme=request.param)
    yield context.new_page()
    context.close()


def test_form_stories_and_list_pass_axe(axe_page: Any, site: str) -> None:
    page = axe_page
    page.goto(site + "/")
    page.locator("#history-status").filter(has_text="story set").wait_for()
    assert violations(page) == []

    page.get_by_role("textbox", name="Feature").fill("Teachers can share a quiz with a class link")
    page.get_by_role("button", name="Generate stories").click()
    page.get_by_role("status").filter(has_text="Done").wait_for()
    page.locator("#key-panel summary").click()
    assert violations(page) == []


def test_error_states_pass_axe(axe_page: Any, site: str) -> None:
    page = axe_page
    page.goto(site + "/")
    page.get_by_role("textbox", name="Feature").fill("ab")
    page.get_by_role("button", name="Generate stories").click()
    page.get_by_role("alert").wait_for()
    assert violations(page) == []
