"""The database's storage is full (SQLite on a full volume): writes are a 503 with Retry-After,
never a 500; readiness says so while writes fail; reads go on; all of it recovers once writes
succeed again.

The full disk is SQLite's own: `PRAGMA max_page_count` at the current size makes every write
that needs a new page fail with SQLITE_FULL, the error a full volume gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from service.main import create_app
from tests.service.conftest import SettingsFactory, wait_for


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """SQLite only: it is the database whose file fills the service's own volume."""
    return sqlite_url


def _fill(engine: Engine) -> Any:
    """From now on, every new connection finds the database at its maximum size, with no free
    page left inside it (VACUUM drops them): any write that needs a page fails."""
    with engine.connect() as conn:
        conn.exec_driver_sql("VACUUM")
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()

    def at_most(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(engine, "connect", at_most)
    engine.dispose()
    return at_most


@pytest.fixture
def full_client(migrated: SettingsFactory) -> Iterator[tuple[TestClient, Engine, Any]]:
    with TestClient(create_app(migrated(rate_limit_per_minute=0))) as client:
        before = client.post("/api/stories", json={"feature": "Stored before the disk filled up"})
        wait_for(client, before.json()["id"])  # the worker writes nothing more
        engine: Engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
        yield client, engine, _fill(engine)


def test_writes_on_a_full_disk_are_503_with_retry_after(
    full_client: tuple[TestClient, Engine, Any],
) -> None:
    client, _, _ = full_client
    response = client.post("/api/stories", json={"feature": "x" * 4000, "context": "y" * 4000})
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert response.json() == {"detail": "database storage is full; retry later"}
    assert response.headers["content-security-policy"]


def test_readiness_reports_a_full_disk_while_reads_go_on(
    full_client: tuple[TestClient, Engine, Any],
) -> None:
    client, engine, limit = full_client
    assert client.get("/readyz").status_code == 200
    assert client.post("/api/stories", json={"feature": "z" * 4000}).status_code == 503
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["database"] == "full"
    assert "storage is full" in ready.json()["reason"]
    listed = client.get("/api/stories")
    assert listed.status_code == 200 and listed.json()["total"] == 1
    # Space again: the next write succeeds and readiness follows it.
    event.remove(engine, "connect", limit)
    engine.dispose()
    assert client.post("/api/stories", json={"feature": "After the cleanup"}).status_code == 202
    assert client.get("/readyz").status_code == 200
