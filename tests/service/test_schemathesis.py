"""Property-based API testing: schemathesis finds no 5xx and no response outside the schema,
call by call and in chains of calls that follow the document's links with real ids."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis import BaseSchema, Case, Response
from schemathesis.checks import (
    CheckFunction,
    allow_header_conformance,
    content_type_conformance,
    ensure_resource_availability,
    not_a_server_error,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
    use_after_free,
)
from schemathesis.engine.errors import is_inconsistent_replay
from schemathesis.generation.stateful.state_machine import StepInput, StepOutput

from service.main import create_app
from service.migrate import upgrade
from service.settings import Settings
from tests.service.conftest import free_port, postgres_reachable

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
# Along a chain of calls: a set just created can be read, a set just deleted cannot.
STATEFUL_CHECKS = [*CHECKS, ensure_resource_availability, use_after_free]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def live_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The app under uvicorn on a random 127.0.0.1 port, migrated, with the offline generator."""
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
    port = free_port()
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


STATEFUL_SETTINGS = settings(
    # A scenario is up to 10 calls; 40 of them take about ten seconds a database on two cores.
    max_examples=40,
    stateful_step_count=10,
    phases=[Phase.generate],
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
STATEFUL_SCENARIOS = 40
STATEFUL_RUNS = 8


@dataclass
class StatefulReport:
    """What the state machine runs did: scenarios, links followed (with the status they got)
    and every check failure, recorded as it happened."""

    scenarios: int = 0
    followed: set[tuple[str, int]] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)

    def took(self, link: str, status: int) -> bool:
        """Whether a call followed the link named `link` (its id's start) and got `status`."""
        return any(name.startswith(link) and code == status for name, code in self.followed)


def _run_state_machine(api_schema: BaseSchema) -> StatefulReport:
    """Run schemathesis' state machine for the links of `api_schema` with STATEFUL_CHECKS."""
    report = StatefulReport()

    class Workflow(api_schema.as_state_machine()):  # type: ignore[misc]  # built per schema
        def setup(self) -> None:
            report.scenarios += 1

        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"timeout": 10}

        def step(self, input: StepInput) -> StepOutput:
            output: StepOutput = super().step(input)
            if input.transition is not None and input.is_applied:
                report.followed.add((input.transition.id, output.response.status_code))
            return output

        def validate_response(
            self,
            response: Response,
            case: Case[Any],
            additional_checks: list[CheckFunction] | None = None,
            **kwargs: Any,
        ) -> None:
            try:
                case.validate_response(
                    response,
                    checks=STATEFUL_CHECKS,
                    transport_kwargs=kwargs,
                    recorder=self.recorder,
                )
            except Exception as exc:
                report.failures.append(f"{case.method} {case.formatted_path}: {exc}")
                raise

    # The server's data lives on between scenarios and schemathesis decides with true randomness
    # whether a call follows a link, so Hypothesis, replaying a prefix of an earlier scenario,
    # can see different draws and stop with "Inconsistent data generation". That is no finding
    # (schemathesis' own runner carries on too): go on with a fresh run. Check failures are
    # recorded above as they happen, so no replay can hide one.
    for _ in range(STATEFUL_RUNS):
        try:
            Workflow.run(settings=STATEFUL_SETTINGS)
        except Exception as exc:
            if not (isinstance(exc, FlakyStrategyDefinition) or is_inconsistent_replay(exc)):
                raise
            if report.failures:
                raise AssertionError("\n\n".join(report.failures)) from exc
        if report.scenarios >= STATEFUL_SCENARIOS:
            break
    return report


def test_api_holds_its_schema_along_linked_calls(api_schema: BaseSchema) -> None:
    """The stateful phase: create, list, read and delete story sets in random orders, each call
    taking its id from an earlier answer through the OpenAPI links, every answer checked."""
    report = _run_state_machine(api_schema)

    assert not report.failures
    assert report.scenarios >= STATEFUL_SCENARIOS
    # The chains did happen, with ids from the answers: a set just created was read, and a set
    # just deleted was asked for again.
    assert report.took("POST /api/stories -> [202] GetStorySet", 200), sorted(report.followed)
    assert report.took("DELETE /api/stories/{story_set_id} -> [204] GetStorySet", 404), sorted(
        report.followed
    )
