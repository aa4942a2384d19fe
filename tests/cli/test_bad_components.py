"""Bad component and smoke-check declarations: exit code 2, the field at fault and where it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_bad_input import _edit, _fails
from tests.helpers import copy_project


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


def test_reference_to_an_undeclared_component(project: Path) -> None:
    _fails(
        project,
        "render",
        "--env",
        "prod",
        "--set",
        "components.worker.depends_on=[backend, cache]",
        words=[
            "components.worker.depends_on.1: no component named 'cache'",
            "components: backend, worker, frontend",
            "--set components.worker.depends_on",
        ],
    )


def test_smoke_check_on_an_undeclared_component(project: Path) -> None:
    _edit(
        project / "environments" / "_base.yaml",
        "      component: frontend\n",
        "      component: web\n",
    )
    _fails(
        project,
        "validate",
        "--env",
        "staging",
        words=["smoke.checks.0.component: no component named 'web'", "_base.yaml line"],
    )


def test_duplicate_port_name(project: Path) -> None:
    _edit(
        project / "environments" / "_base.yaml",
        "ports: {http: 8000}",
        "ports: {http: 8000, http: 8001}",
    )
    _fails(
        project,
        "render",
        "--env",
        "dev",
        words=["environments/_base.yaml line", "the key 'http' is given twice in one mapping"],
    )


def test_probe_on_an_undeclared_port(project: Path) -> None:
    _fails(
        project,
        "render",
        "--env",
        "prod",
        "--set",
        "components.frontend.probes.readiness.port=admin",
        words=["probes.readiness.port: no port named 'admin' (ports: http)"],
    )


def test_sequence_uses_a_value_no_step_captures(project: Path) -> None:
    check = (
        "smoke.checks=[{name: order, component: backend, steps: ["
        "{method: POST, path: /api/stories, capture: {id: id}},"
        "{path: '/api/stories/${story}'}]}]"
    )
    _fails(
        project,
        "render",
        "--env",
        "dev",
        "--set",
        check,
        words=[
            "smoke.checks.0.steps.1.path: ${story} is not captured by an earlier step of check "
            "'order' (captured so far: id)",
            "${env:NAME}",
        ],
    )


def test_task_on_a_component_without_an_image(project: Path) -> None:
    _fails(
        project,
        "render",
        "--env",
        "dev",
        "--set",
        "components.worker.image=null",
        "--set",
        "components.worker.tasks={seed: {command: [python3, -m, seed]}}",
        words=["components.worker", "has no image: its tasks (seed) run in it"],
    )


def test_check_on_a_component_the_runner_cannot_reach(project: Path) -> None:
    _fails(
        project,
        "render",
        "--env",
        "dev",
        "--set",
        "smoke.checks=[{name: queue, component: worker, path: /readyz}]",
        words=[
            "smoke.checks.0.component",
            "which the runner cannot reach on compose",
            "components.worker.expose.compose",
            "smoke.urls.worker",
        ],
    )


def test_check_with_both_a_path_and_steps(project: Path) -> None:
    _fails(
        project,
        "render",
        "--env",
        "dev",
        "--set",
        "smoke.checks=[{name: both, component: backend, path: /a, steps: [{path: /b}]}]",
        words=["smoke.checks.0", "give either path (one request) or steps"],
    )


def test_unpinned_existing_image_on_kubernetes(project: Path) -> None:
    _fails(
        project,
        "render",
        "--env",
        "prod",
        "--set",
        "components.worker.image={ref: redis}",
        words=["components.worker.image.ref is 'latest' for a Kubernetes environment"],
    )
