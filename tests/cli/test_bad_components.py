"""Bad component and smoke-check declarations: exit code 2, the field at fault and where it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_bad_input import _edit, _fails
from tests.helpers import copy_project

UNCAPTURED = (
    "smoke.checks=[{name: order, component: backend, steps: ["
    "{method: POST, path: /api/stories, capture: {id: id}},"
    "{path: '/api/stories/${story}'}]}]"
)

# (environment, --set values, the words the user must see)
CASES = {
    "reference to an undeclared component": (
        "prod",
        ["components.worker.depends_on=[backend, cache]"],
        [
            "components.worker.depends_on.1: no component named 'cache'",
            "components: backend, worker, frontend",
            "--set components.worker.depends_on",
        ],
    ),
    "probe on an undeclared port": (
        "prod",
        ["components.frontend.probes.readiness.port=admin"],
        ["probes.readiness.port: no port named 'admin' (ports: http)"],
    ),
    "sequence uses a value no step captures": (
        "dev",
        [UNCAPTURED],
        [
            "smoke.checks.0.steps.1.path: ${story} is not captured by an earlier step of check "
            "'order' (captured so far: id)",
            "${env:NAME}",
        ],
    ),
    "task on a component without an image": (
        "dev",
        [
            "components.worker.image=null",
            "components.worker.tasks={seed: {command: [python3, -m, seed]}}",
        ],
        ["components.worker", "has no image: its tasks (seed) run in it"],
    ),
    "check on a component the runner cannot reach": (
        "dev",
        ["smoke.checks=[{name: queue, component: worker, path: /readyz}]"],
        [
            "smoke.checks.0.component",
            "which the runner cannot reach on compose",
            "components.worker.expose.compose",
            "smoke.urls.worker",
        ],
    ),
    "check with both a path and steps": (
        "dev",
        ["smoke.checks=[{name: both, component: backend, path: /a, steps: [{path: /b}]}]"],
        ["smoke.checks.0", "give either path (one request) or steps"],
    ),
    "unpinned existing image on Kubernetes": (
        "prod",
        ["components.worker.image={ref: redis}"],
        ["components.worker.image.ref is 'latest' for a Kubernetes environment"],
    ),
}


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


@pytest.mark.parametrize("case", list(CASES))
def test_bad_declaration_set_on_the_command_line(project: Path, case: str) -> None:
    env, sets, words = CASES[case]
    _fails(project, "render", "--env", env, *(f"--set={s}" for s in sets), words=words)


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
