"""Property-based API testing: schemathesis finds no 5xx and no response outside the schema."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    not_a_server_error,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from service.main import create_app
from service.migrate import upgrade
from service.settings import Settings

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    # What the schema allows is accepted (test_api_contract checks the edges value by value);
    # a method it does not list is a 405 whose Allow names exactly the listed ones.
    positive_data_acceptance,
    unsupported_method,
    allow_header_conformance,
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def live_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The app under uvicorn on a random 127.0.0.1 port, migrated, with the offline generator."""
    from tests.service.conftest import postgres_reachable

    if request.param == "sqlite":
        database_url = f"sqlite:///{tmp_path_factory.mktemp('st')}/stories.db"
        cleanup = None
    else:
        reason = postgres_reachable()
        if reason:
            pytest.skip(reason)
        import uuid

        import psycopg

        name = f"autodevhub_t_{uuid.uuid4().hex[:12]}"
        admin = "postgresql://postgres@127.0.0.1:5432/test"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        database_url = f"postgresql://postgres@127.0.0.1:5432/{name}"

        def cleanup() -> None:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    app_settings = Settings(
        database_url=database_url,
        rate_limit_per_minute=0,
        read_rate_limit_per_minute=0,
        access_log=False,
        log_level="warning",
    )
    upgrade(app_settings)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(app_settings), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        if cleanup is not None:
            cleanup()


@pytest.fixture(scope="module")
def api_schema(live_url: str) -> Any:
    """The app's OpenAPI document, loaded by schemathesis from the live server."""
    return schemathesis.openapi.from_url(f"{live_url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_api_matches_its_schema(case: Any) -> None:
    case.call_and_validate(checks=CHECKS, timeout=10)
