"""`pip install .` is the CLI alone: the service's packages come with the `service` extra, and
the CLI's commands run with none of them importable."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

from packaging.requirements import Requirement

from tests.helpers import REPO

SERVICE_PACKAGES = {
    "fastapi",
    "uvicorn",
    "pydantic-settings",
    "sqlalchemy",
    "alembic",
    "anthropic",
    "prometheus-client",
    "psycopg",
    "uvloop",
    "httptools",
}
SERVICE_MODULES = {
    "fastapi",
    "uvicorn",
    "pydantic_settings",
    "sqlalchemy",
    "alembic",
    "anthropic",
    "prometheus_client",
    "psycopg",
    "uvloop",
    "httptools",
    "service",
}

BLOCKED = """
import sys
blocked = set(sys.argv[1].split(","))
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, Blocker())
sys.argv = ["autodevhub", *sys.argv[2:]]
from autodevhub_cli.main import main
main()
"""


def test_the_service_packages_are_only_an_extra() -> None:
    requirements = [Requirement(r) for r in importlib.metadata.requires("autodevhub") or []]
    plain = {r.name.lower() for r in requirements if r.marker is None}
    assert plain, "the CLI's own dependencies"
    assert not plain & SERVICE_PACKAGES, plain & SERVICE_PACKAGES
    extra = {
        r.name.lower()
        for r in requirements
        if r.marker is not None and r.marker.evaluate({"extra": "service"})
    }
    assert extra >= SERVICE_PACKAGES, SERVICE_PACKAGES - extra


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKED, ",".join(sorted(SERVICE_MODULES)), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_the_cli_runs_with_no_service_package_importable() -> None:
    for args in (
        ("render", "--env", "prod", "--set", "components.backend.replicas=3"),
        ("validate", "--env", "staging"),
        ("deploy", "--help"),
        ("db", "restore", "--help"),
    ):
        proc = _cli(*args, "--project-dir", str(REPO)) if args[-1] != "--help" else _cli(*args)
        assert proc.returncode == 0, (args, proc.stderr[-2000:])
        assert "blocked by the test" not in proc.stderr
