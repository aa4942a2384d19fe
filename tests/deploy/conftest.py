"""Fixtures for end-to-end deploys on the real Docker engine, registry and Compose v2."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import copy_project, run_cli
from tests.images.conftest import BASE_IMAGES, REGISTRY, _engine_problem


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Stack:
    """A throwaway copy of the project deployed as its own Compose project on free ports."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name
        self.frontend_port = free_port()
        self.backend_port = free_port()
        self.env = {f"AUTODEVHUB__BUILD__BASE_IMAGES__{k}": v for k, v in BASE_IMAGES.items()}
        self.env.update(
            {
                "AUTODEVHUB__REGISTRY__URL": f"{REGISTRY}/{name}",
                "AUTODEVHUB__COMPOSE__PROJECT_NAME": name,
                "AUTODEVHUB__COMPOSE__FRONTEND_PORT": str(self.frontend_port),
                "AUTODEVHUB__COMPOSE__BACKEND_PORT": str(self.backend_port),
                "AUTODEVHUB__COMPOSE__DATA_VOLUME": "data",
                "AUTODEVHUB__BUILD__BACKEND_WORKERS": "1",
            }
        )

    def cli(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        return run_cli(*args, "--project-dir", str(self.root), env={**self.env, **(env or {})})

    def process_env(self) -> dict[str, str]:
        return {**os.environ, **self.env, "AUTODEVHUB_PROJECT_DIR": str(self.root)}

    def releases(self) -> list[dict]:
        import json

        folder = self.root / ".autodevhub" / "releases" / "dev"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*/release.json"))]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    problem = _engine_problem()
    if problem:
        pytest.skip(problem)
    root = copy_project(tmp_path_factory.mktemp("deploy-project"), with_service=True)
    created = Stack(root, f"adh{uuid.uuid4().hex[:8]}")
    yield created
    created.cli("down", "--env", "dev", "--volumes")
