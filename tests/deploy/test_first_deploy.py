"""A first deploy that fails, on the real engine: there is no good release to go back to, so
the failed release is stopped with its volumes kept, unless `--keep-failed` leaves it running."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.conftest import Stack
from tests.helpers import copy_project
from tests.images.conftest import _engine_problem

pytestmark = [pytest.mark.docker, pytest.mark.compose]

BROKEN = [
    "--set",
    "components.backend.probes.readiness.path=/never-ready",
    "--set",
    "compose.health_start_period_seconds=2",
    "--timeout",
    "40",
]


@pytest.fixture()
def fresh(tmp_path: Path) -> Iterator[Stack]:
    problem = _engine_problem()
    if problem:
        pytest.skip(problem)
    stack = Stack(
        copy_project(tmp_path / "project", with_service=True), f"adh{uuid.uuid4().hex[:8]}"
    )
    yield stack
    stack.cli("down", "--env", "dev", "--volumes")
    stack.forget()


def _docker(*args: str) -> list[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, check=True)
    return [line for line in proc.stdout.splitlines() if line.strip()]


def _containers(stack: Stack) -> list[str]:
    return _docker("ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={stack.name}")


def test_a_failed_first_release_is_stopped_and_its_volumes_kept(fresh: Stack) -> None:
    code, _, err = fresh.cli("deploy", "--env", "dev", *BROKEN)
    assert code == 1, err
    assert "did not become healthy" in err
    assert "no earlier good release to roll back to, so the failed release" in err
    assert "was stopped (its volumes are kept)" in err and "--keep-failed" in err
    assert _containers(fresh) == [], "nothing of the failed release is left running"
    assert f"{fresh.name}_backend-data" in _docker("volume", "ls", "-q")
    assert fresh.releases()[-1]["status"] == "failed"


def test_keep_failed_leaves_it_running_for_debugging(fresh: Stack) -> None:
    code, _, err = fresh.cli("deploy", "--env", "dev", "--keep-failed", *BROKEN)
    assert code == 1, err
    assert "left running, as --keep-failed asked" in err
    assert len(_containers(fresh)) == 3
