"""The stories API end to end with the offline generator, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.service.conftest import wait_for

STORY_TEXT = re.compile(r"^As a .+, I want .+, so that .+\.$")


def test_post_returns_202_with_location_and_queued_set(client: TestClient) -> None:
    response = client.post(
        "/api/stories",
        json={"feature": "  Export invoices as PDF  ", "persona": "accountant", "context": ""},
    )
    assert response.status_code == 202
    body = response.json()
    assert response.headers["location"] == f"/api/stories/{body['id']}"
    assert body["status"] == "queued"
    assert body["feature"] == "Export invoices as PDF"
    assert body["context"] is None
    assert body["persona"] == "accountant"
    assert body["stories"] == []
    assert body["generator"] is None


def test_generation_completes_with_offline_stories(client: TestClient) -> None:
    created = client.post("/api/stories", json={"feature": "Reset a forgotten password"}).json()
    done = wait_for(client, created["id"])
    assert done["status"] == "done", done
    assert done["generator"] == "offline"
    assert done["error"] is None
    assert 3 <= len(done["stories"]) <= 8
    for story in done["stories"]:
        assert STORY_TEXT.match(story["text"]), story["text"]
        assert story["text"] == (
            f"As a {story['as_a']}, I want {story['i_want']}, so that {story['so_that']}."
        )
        assert story["priority"] in {"high", "medium", "low"}
        assert story["estimate"] in {1, 2, 3, 5, 8, 13}
        assert story["acceptance_criteria"]
        assert set(story["acceptance_criteria"][0]) == {"given", "when", "then"}


def test_offline_generator_is_deterministic(client: TestClient) -> None:
    first = client.post("/api/stories", json={"feature": "Search orders by date"}).json()
    second = client.post("/api/stories", json={"feature": "Search orders by date"}).json()
    assert wait_for(client, first["id"])["stories"] == wait_for(client, second["id"])["stories"]


def test_list_is_newest_first_with_pagination_and_filter(client: TestClient) -> None:
    ids = [
        client.post("/api/stories", json={"feature": f"Feature number {i} about invoices"}).json()[
            "id"
        ]
        for i in range(5)
    ]
    client.post("/api/stories", json={"feature": "Something else", "persona": "100%_admin"})
    page = client.get("/api/stories", params={"limit": 2, "offset": 1, "q": "INVOICES"}).json()
    assert page["total"] == 5
    assert page["limit"] == 2 and page["offset"] == 1
    assert [item["id"] for item in page["items"]] == [ids[3], ids[2]]
    assert "stories" not in page["items"][0]
    assert isinstance(page["items"][0]["story_count"], int)
    beyond = client.get("/api/stories", params={"offset": 50, "q": "invoices"}).json()
    assert beyond["items"] == [] and beyond["total"] == 5
    literal = client.get("/api/stories", params={"q": "100%_"}).json()
    assert literal["total"] == 1
    assert client.get("/api/stories", params={"q": "%"}).json()["total"] == 1
    assert client.get("/api/stories").json()["total"] == 6


def test_list_reports_story_count_when_done(client: TestClient) -> None:
    created = client.post("/api/stories", json={"feature": "Upload an avatar"}).json()
    done = wait_for(client, created["id"])
    [item] = client.get("/api/stories").json()["items"]
    assert item["story_count"] == len(done["stories"])


def test_delete_then_get_is_404(client: TestClient) -> None:
    created = client.post("/api/stories", json={"feature": "Archive old projects"}).json()
    assert client.delete(f"/api/stories/{created['id']}").status_code == 204
    assert client.get(f"/api/stories/{created['id']}").status_code == 404
    assert client.delete(f"/api/stories/{created['id']}").status_code == 404


def test_unknown_and_malformed_ids_are_404(client: TestClient) -> None:
    missing = client.get("/api/stories/0123456789abcdef0123456789abcdef")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "story set not found"}
    assert client.get("/api/stories/not-a-uuid").status_code == 404


def test_uuid_with_dashes_is_accepted(client: TestClient) -> None:
    created = client.post("/api/stories", json={"feature": "Share a report"}).json()
    raw = created["id"]
    dashed = f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
    assert client.get(f"/api/stories/{dashed}").json()["id"] == raw


def test_limit_bounds_are_422(client: TestClient) -> None:
    assert client.get("/api/stories", params={"limit": 0}).status_code == 422
    assert client.get("/api/stories", params={"limit": 101}).status_code == 422
    assert client.get("/api/stories", params={"offset": -1}).status_code == 422


def test_nul_characters_are_refused_not_500(client: TestClient) -> None:
    response = client.post("/api/stories", json={"feature": "abc\u0000def"})
    assert response.status_code == 422
    assert client.get("/api/stories", params={"q": "a\x00b"}).status_code == 422


def test_filter_takes_backslashes_literally(client: TestClient) -> None:
    client.post("/api/stories", json={"feature": r"Parse C:\temp paths"})
    client.post("/api/stories", json={"feature": "Parse Ctemp paths"})
    assert client.get("/api/stories", params={"q": "c:\\temp"}).json()["total"] == 1
