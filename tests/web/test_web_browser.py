"""The front end in headless Chromium, served by nginx (the image's config) in front of the real backend."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

import httpx
import pytest
from web_servers import WEB, Running, measure_load, run_dev_server, run_nginx

pytestmark = pytest.mark.browser

EN_DASH = "\u2013"  # the page writes ranges with an en dash, as typography wants
FEATURE = "Shop owners can export last month's orders as a CSV file"


def submit_feature(page: Any, feature: str, context: str = "", persona: str = "") -> None:
    """Fill the form like a person and press the button."""
    page.get_by_role("textbox", name="Feature").fill(feature)
    if context:
        page.get_by_role("textbox", name="Context").fill(context)
    if persona:
        page.get_by_role("textbox", name="Persona").fill(persona)
    page.get_by_role("button", name="Generate stories").click()


def test_page_loads_fast_small_and_under_csp(
    browser: Any, page: Any, site: str, artifacts: Path
) -> None:
    # Three cold loads, each in a fresh context (nothing cached: every asset crosses the wire); the
    # median keeps one load slowed by a busy machine from deciding the test.
    loads = [measure_load(page, site + "/")]
    for _ in range(2):
        context = browser.new_context()
        loads.append(measure_load(context.new_page(), site + "/"))
        context.close()
    fcp = statistics.median(load["fcp_ms"] for load in loads)
    figures = {"fcp_ms_median_of_3": fcp, "loads": loads}
    (artifacts / "web-perf.json").write_text(json.dumps(figures, indent=2) + "\n")

    assert page.get_by_role("heading", level=1).inner_text() == "Write user stories for a feature"
    assert fcp < 2000, figures
    first = loads[0]
    assert all(f["transfer"] > 0 for f in first["files"]), first  # a cold load, really
    assert first["encoded_body_bytes"] < 50 * 1024, first
    assert first["transfer_bytes"] < 50 * 1024, first
    assert any(f["url"].startswith("/assets/app.") for f in first["files"]), first
    # Assets came gzipped (gzip_static): far fewer bytes on the wire than in memory.
    assert first["encoded_body_bytes"] < first["decoded_body_bytes"] / 2, first
    assert page.js_errors == []


def test_feature_becomes_stories_and_joins_the_list(page: Any, site: str, artifacts: Path) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site)
    page.goto(site + "/")
    submit_feature(page, FEATURE, context="Orders live in PostgreSQL.", persona="shop owner")

    page.get_by_role("status").filter(has_text="Done").wait_for()
    stories = page.locator("article.story")
    assert stories.count() >= 1
    first = stories.first
    assert first.get_by_role("heading", level=3).inner_text()
    assert "Given" in first.locator("dl.gwt").first.inner_text()
    assert re.search(r"/stories/[^/]+$", page.url)
    assert page.locator("#status").inner_text().startswith("Done: ")
    # The form keeps what was typed.
    assert page.get_by_role("textbox", name="Feature").input_value() == FEATURE

    history = page.locator("#history")
    history.get_by_role("link", name=FEATURE).first.wait_for()

    page.get_by_role("button", name="Copy as Markdown").click()
    page.get_by_text("Copied as Markdown.").wait_for()
    markdown = page.evaluate("navigator.clipboard.readText()")
    assert markdown.startswith(f"# User stories: {FEATURE}")
    assert "**Given**" in markdown

    page.screenshot(path=str(artifacts / "web-stories.png"), full_page=True)

    # A deep link to the set works after a reload (nginx's SPA fallback).
    page.reload()
    page.get_by_role("status").filter(has_text="Done").wait_for()
    assert page.locator("article.story").count() == stories.count()
    assert page.js_errors == []


def test_phone_layout_has_no_sideways_scroll(browser: Any, site: str, artifacts: Path) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page = context.new_page()
    try:
        page.goto(site + "/")
        submit_feature(page, "Riders can see the bike's battery level before unlocking it")
        page.get_by_role("status").filter(has_text="Done").wait_for()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        button = page.get_by_role("button", name="Generate stories").bounding_box()
        assert button is not None and button["height"] >= 44  # touch target size
        page.screenshot(path=str(artifacts / "web-form-phone.png"))
        page.locator("#result-heading").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "web-stories-phone.png"))
    finally:
        context.close()


def test_unknown_story_set_shows_the_api_404(page: Any, site: str) -> None:
    page.goto(site + "/stories/0123456789abcdef0123456789abcdef")
    page.get_by_text("That story set no longer exists.").wait_for()


def test_validation_errors_keep_the_text(page: Any, site: str) -> None:
    page.goto(site + "/")
    submit_feature(page, "ab", context="Some context worth keeping")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Please fix" in alert.inner_text()
    feature = page.get_by_role("textbox", name="Feature")
    assert feature.get_attribute("aria-invalid") == "true"
    assert (
        page.locator("#feature-error").inner_text()
        == "Describe the feature in at least 3 characters."
    )
    assert page.get_by_role("textbox", name="Context").input_value() == "Some context worth keeping"
    # A reload (or a crash of the tab's page) keeps the draft too.
    page.goto(site + "/")
    assert page.get_by_role("textbox", name="Context").input_value() == "Some context worth keeping"


def test_api_422_is_shown_next_to_the_field(page: Any, site: str) -> None:
    detail = [
        {
            "loc": ["body", "persona"],
            "msg": "String should have at most 200 characters",
            "type": "x",
        }
    ]
    page.route(
        "**/api/stories",
        lambda route: (
            route.fulfill(status=422, json={"detail": detail})
            if route.request.method == "POST"
            else route.continue_()
        ),
    )
    page.goto(site + "/")
    submit_feature(page, FEATURE, persona="a persona the server rejects")
    page.get_by_role("alert").wait_for()
    assert (
        page.locator("#persona-error").inner_text() == "String should have at most 200 characters"
    )
    assert (
        page.get_by_role("textbox", name="Persona").input_value() == "a persona the server rejects"
    )


def test_rate_limit_says_when_to_retry(page: Any, site: str) -> None:
    page.route(
        "**/api/stories",
        lambda route: (
            route.fulfill(
                status=429,
                headers={"Retry-After": "7"},
                json={"detail": "rate limit exceeded"},
            )
            if route.request.method == "POST"
            else route.continue_()
        ),
    )
    page.goto(site + "/")
    submit_feature(page, FEATURE)
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Too many requests right now. Try again in 7 seconds." in alert.inner_text()
    button = page.locator("#submit")
    assert button.is_disabled()
    assert re.fullmatch(r"Wait [67] s", button.inner_text())
    assert page.get_by_role("textbox", name="Feature").input_value() == FEATURE


def test_server_error_and_network_down_are_plain(page: Any, site: str, artifacts: Path) -> None:
    mode = {"value": "500"}

    def handle(route: Any) -> None:
        if route.request.method != "POST":
            route.continue_()
        elif mode["value"] == "500":
            route.fulfill(status=500, json={"detail": "Internal Server Error"})
        else:
            route.abort("connectionrefused")

    page.route("**/api/stories", handle)
    page.goto(site + "/")
    submit_feature(page, FEATURE)
    alert = page.get_by_role("alert")
    alert.filter(has_text="error 500").wait_for()
    assert "Your text is still here" in alert.inner_text()
    assert page.evaluate("document.activeElement.id") == "form-error"
    page.screenshot(path=str(artifacts / "web-error.png"))

    mode["value"] = "down"
    page.get_by_role("button", name="Generate stories").click()
    alert.filter(has_text="Can't reach the server").wait_for()
    assert page.get_by_role("textbox", name="Feature").input_value() == FEATURE


def test_backend_down_is_a_503_the_page_explains(
    page: Any, dist: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # nginx in front of a port where nothing listens: its own JSON 503, not an HTML 502.
    from web_servers import free_port

    with run_nginx(dist, f"127.0.0.1:{free_port()}", tmp_path_factory.mktemp("nginx-down")) as n:
        page.goto(n.url + "/")
        page.locator("#history-status").filter(has_text="not reachable").wait_for()
        submit_feature(page, FEATURE)
        alert = page.get_by_role("alert")
        alert.filter(has_text="error 503").wait_for()
        assert "The story service is not reachable right now" in alert.inner_text()


def test_401_opens_the_key_panel_and_the_key_is_sent(page: Any, site: str) -> None:
    seen: list[str | None] = []

    def handle(route: Any) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        auth = route.request.headers.get("authorization")
        seen.append(auth)
        if auth != "Bearer s3cret":
            route.fulfill(status=401, json={"detail": "missing bearer API key"})
        else:
            route.continue_()

    page.route("**/api/stories", handle)
    page.goto(site + "/")
    submit_feature(page, FEATURE)
    page.get_by_role("alert").filter(has_text="needs an API key").wait_for()
    assert page.locator("#key-panel").get_attribute("open") is not None

    page.get_by_label("API key", exact=False).first.fill("s3cret")
    page.get_by_role("button", name="Save key").click()
    page.get_by_role("button", name="Generate stories").click()
    page.get_by_role("status").filter(has_text="Done").wait_for()
    assert seen == [None, "Bearer s3cret"]
    assert page.evaluate("sessionStorage.getItem('autodevhub.apiKey')") == "s3cret"


def test_keyboard_only_submission(page: Any, site: str) -> None:
    page.goto(site + "/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.get_by_role("textbox", name="Feature").focus()
    page.keyboard.type("Editors can schedule an article to publish later")
    page.keyboard.press("Control+Enter")
    page.get_by_role("status").filter(has_text="Done").wait_for()
    # Focus moved to the results so a screen reader user lands on them.
    assert page.evaluate("document.activeElement.id") == "result-heading"


def test_history_search_and_paging(page: Any, site: str, backend: Running) -> None:
    with httpx.Client(base_url=site, timeout=10) as client:
        for n in range(12):
            r = client.post("/api/stories", json={"feature": f"Quokka feature number {n:02d}"})
            assert r.status_code == 202, r.text
    page.goto(site + "/")
    page.get_by_role("searchbox", name="Search").fill("Quokka")
    status = page.locator("#history-status")
    status.filter(has_text=f"1{EN_DASH}10 of 12").wait_for()
    assert page.locator("#history li").count() == 10
    # Newest first.
    assert page.locator("#history li a").first.inner_text() == "Quokka feature number 11"

    page.get_by_role("button", name="Next").click()
    status.filter(has_text=f"11{EN_DASH}12 of 12").wait_for()
    assert page.locator("#history li").count() == 2
    assert page.get_by_role("button", name="Next").is_disabled()

    page.get_by_role("button", name="Previous").click()
    status.filter(has_text=f"1{EN_DASH}10 of 12").wait_for()

    page.locator("#history li a").first.click()
    page.locator("#result-feature").filter(has_text="Quokka feature number 11").wait_for()
    assert "/stories/" in page.url

    page.get_by_role("searchbox", name="Search").fill("no-such-feature-anywhere")
    status.filter(has_text="No story sets match").wait_for()


def test_development_mode_serves_src_without_a_build(
    page: Any, backend: Running, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with run_nginx(
        WEB / "src", f"127.0.0.1:{backend.port}", tmp_path_factory.mktemp("nginx-dev")
    ) as n:
        page.goto(n.url + "/")
        submit_feature(page, "Readers can save an article for offline reading")
        page.get_by_role("status").filter(has_text="Done").wait_for()
        assert page.locator("article.story").count() >= 1
        assert page.js_errors == []


def test_node_dev_server_serves_src_and_proxies_the_api(
    page: Any, backend: Running, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with run_dev_server(f"127.0.0.1:{backend.port}", tmp_path_factory.mktemp("dev")) as dev:
        response = page.goto(dev.url + "/stories/not-a-real-id")
        assert response.status == 200
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page.get_by_text("That story set no longer exists.").wait_for()
        submit_feature(page, "Drivers can report a pothole with a photo")
        page.get_by_role("status").filter(has_text="Done").wait_for()
        assert page.locator("article.story").count() >= 1
        assert httpx.get(dev.url + "/missing.js").status_code == 404
        assert page.js_errors == []


def test_copy_without_clipboard_api_selects_the_markdown(page: Any, site: str) -> None:
    page.add_init_script("Object.defineProperty(navigator, 'clipboard', { value: undefined })")
    page.goto(site + "/")
    submit_feature(page, "Gardeners can log when each plant was last watered")
    page.get_by_role("status").filter(has_text="Done").wait_for()
    page.get_by_role("button", name="Copy as Markdown").click()
    area = page.get_by_role("textbox", name="Stories as Markdown")
    area.wait_for()
    assert area.input_value().startswith("# User stories: Gardeners can log")
    selected = page.evaluate(
        "(() => { const a = document.activeElement; return a.selectionEnd - a.selectionStart; })()"
    )
    assert selected == len(area.input_value())
    # Clicking again reuses the same text area.
    page.get_by_role("button", name="Copy as Markdown").click()
    assert page.locator(".copy-fallback").count() == 1


def story_set(status: str, **extra: Any) -> dict[str, Any]:
    """A StorySet body as the API returns it."""
    story = {
        "title": "Export orders",
        "as_a": "shop owner",
        "i_want": "to export orders",
        "so_that": "I can do my books",
        "text": "As a shop owner, I want to export orders, so that I can do my books.",
        "acceptance_criteria": [{"given": "orders exist", "when": "I export", "then": "I get CSV"}],
        "priority": "high",
        "estimate": 3,
    }
    return {
        "id": "f" * 32,
        "status": status,
        "feature": "Export orders",
        "context": None,
        "persona": None,
        "generator": "offline" if status == "done" else None,
        "model": None,
        "error": None,
        "created_at": "2026-11-27T03:00:00+00:00",
        "updated_at": "2026-11-27T03:00:00+00:00",
        "stories": [story] if status == "done" else [],
        **extra,
    }


def test_status_follows_the_set_until_done(page: Any, site: str) -> None:
    answers = [story_set("queued"), story_set("running"), story_set("running"), story_set("done")]
    seen: list[str] = []

    def handle(route: Any) -> None:
        body = answers.pop(0) if len(answers) > 1 else answers[0]
        seen.append(body["status"])
        route.fulfill(status=200, json=body)

    page.route(f"**/api/stories/{'f' * 32}", handle)
    page.goto(f"{site}/stories/{'f' * 32}")
    page.get_by_role("status").filter(has_text="Writing stories").wait_for()
    page.get_by_role("status").filter(has_text="Done: 1 story.").wait_for()
    assert seen[:4] == ["queued", "running", "running", "done"]
    assert page.get_by_role("button", name="Copy as Markdown").is_visible()


def test_a_failed_set_says_why(page: Any, site: str) -> None:
    failed = story_set("failed", error="the generator timed out")
    page.route(f"**/api/stories/{'f' * 32}", lambda route: route.fulfill(status=200, json=failed))
    page.goto(f"{site}/stories/{'f' * 32}")
    page.get_by_role("status").filter(
        has_text="Generation failed: the generator timed out."
    ).wait_for()
    assert not page.get_by_role("button", name="Copy as Markdown").is_visible()
