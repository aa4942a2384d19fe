"""Fixtures for tests against the real Docker engine and the registry on 127.0.0.1:5000."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from tests.helpers import copy_project

REGISTRY = "127.0.0.1:5000"
# Stand-in base images made by scripts/ci/provision-docker.sh (nothing can be pulled here).
BASE_IMAGES = {
    "PYTHON": "autodevhub-ci/python:3.11-bookworm",
    "NODE": "autodevhub-ci/node:18-bookworm",
    "NGINX": "autodevhub-ci/nginx:1.22-bookworm",
}


def _engine_problem() -> str | None:
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:
        return f"no Docker engine ({exc}); run scripts/ci/provision-docker.sh"
    missing = [ref for ref in BASE_IMAGES.values() if not client.images.list(name=ref)]
    if missing:
        return f"stand-in base images missing: {missing}; run scripts/ci/provision-docker.sh"
    import httpx

    try:
        httpx.get(f"http://{REGISTRY}/v2/", timeout=3).raise_for_status()
    except Exception as exc:
        return f"no registry at {REGISTRY} ({exc}); run scripts/ci/provision-docker.sh"
    return None


@pytest.fixture(scope="session")
def docker_client() -> object:
    problem = _engine_problem()
    if problem:
        pytest.skip(problem)
    import docker

    return docker.from_env(timeout=300)


@pytest.fixture(scope="module")
def build_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this project (environments, templates, service) that tests may change."""
    return copy_project(tmp_path_factory.mktemp("project"), with_service=True)


@pytest.fixture(scope="module")
def build_env(docker_client: object) -> Iterator[dict[str, str]]:
    """Environment variables pointing a build at the stand-in bases and a fresh repository."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    values = {f"AUTODEVHUB__BUILD__ARGS__{k}_IMAGE": v for k, v in BASE_IMAGES.items()}
    values["AUTODEVHUB__REGISTRY__URL"] = f"{REGISTRY}/{prefix}"
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    yield values
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextmanager
def logged(name: str) -> Iterator[list[str]]:
    """What autodevhub's logger `name` logged meanwhile, whatever AUTODEVHUB_DEBUG says."""
    calls: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            calls.append(record.getMessage())

    logger = logging.getLogger(name)
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield calls
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def engine_calls() -> AbstractContextManager[list[str]]:
    """What the Docker adapter logged (`docker: inspect ...`, `docker: run ...`) meanwhile."""
    return logged("autodevhub.docker")
