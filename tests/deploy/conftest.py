"""Fixtures for end-to-end deploys: the real Docker engine, registry and Compose v2, and the
Kubernetes control plane (or, where a test says why, the API double)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from autodevhub_cli.core.adapters.kube import ObjectRef
from tests.deploy import local_cluster
from tests.deploy.kube_cluster import Cluster, project_copy
from tests.helpers import REPO, copy_project, run_cli
from tests.images.conftest import BASE_IMAGES, REGISTRY, _engine_problem
from tests.kubefake.server import KubeFake

sys.path.insert(0, str(REPO / "tests" / "web"))
from web_servers import build_dist, free_port, missing_browser_tools, run_backend, run_nginx


class Stack:
    """A throwaway copy of the project deployed as its own Compose project on free ports."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name
        self.frontend_port = free_port()
        self.backend_port = free_port()
        self.env = {f"AUTODEVHUB__BUILD__ARGS__{k}_IMAGE": v for k, v in BASE_IMAGES.items()}
        self.env.update(
            {
                "AUTODEVHUB__REGISTRY__URL": f"{REGISTRY}/{name}",
                "AUTODEVHUB__COMPOSE__PROJECT_NAME": name,
                "AUTODEVHUB__COMPONENTS__FRONTEND__EXPOSE__COMPOSE__HTTP": str(self.frontend_port),
                "AUTODEVHUB__COMPONENTS__BACKEND__EXPOSE__COMPOSE__HTTP": str(self.backend_port),
                "AUTODEVHUB__COMPONENTS__BACKEND__ENV__WORKERS": "1",
            }
        )

    def cli(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        return run_cli(*args, "--project-dir", str(self.root), env={**self.env, **(env or {})})

    def process_env(self) -> dict[str, str]:
        return {**os.environ, **self.env, "AUTODEVHUB_PROJECT_DIR": str(self.root)}

    def forget(self) -> None:
        """Remove the history the Docker host keeps for this project (its release volumes)."""
        import docker

        client = docker.from_env()
        label = f"io.autodevhub.release-store={self.name}"
        for volume in client.volumes.list(filters={"label": label}):
            volume.remove(force=True)

    def releases(self) -> list[dict]:
        """The history the Docker host keeps for the environment, oldest first."""
        import json

        code, out, err = self.cli("history", "--env", "dev", "--output", "json")
        assert code == 0, err
        return list(json.loads(out)["releases"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    problem = _engine_problem()
    if problem:
        pytest.skip(problem)
    root = copy_project(tmp_path_factory.mktemp("deploy-project"), with_service=True)
    created = Stack(root, f"adh{uuid.uuid4().hex[:8]}")
    yield created
    created.cli("down", "--env", "dev", "--volumes")
    created.forget()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The real backend and nginx: what the Ingress and the preview Service would reach."""
    missing = missing_browser_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (run bash scripts/ci/provision-browser.sh)")
    work = tmp_path_factory.mktemp("k8s-app")
    dist = work / "dist"
    assert build_dist(dist).returncode == 0
    with (
        run_backend(work, {"RATE_LIMIT_PER_MINUTE": "100000"}) as backend,
        run_nginx(dist, f"127.0.0.1:{backend.port}", work) as nginx,
    ):
        yield {"base": nginx.url, "backend": backend.url}


@pytest.fixture()
def cluster(tmp_path: Path, app: dict[str, str]) -> Iterator[Cluster]:
    """A namespace of its own on the real control plane, deleted afterwards."""
    kubeconfig, why = local_cluster.kubeconfig()
    if kubeconfig is None:
        pytest.skip(why)
    made = Cluster(project_copy(tmp_path), kubeconfig, None, app)
    yield made
    made.kube.delete(ObjectRef("v1", "Namespace", "", made.ns))


@pytest.fixture()
def fake_cluster(tmp_path: Path, app: dict[str, str]) -> Iterator[Cluster]:
    """The API double, for what the real cluster cannot show (said at each use)."""
    with KubeFake(auto_ready=True) as fake:
        yield Cluster(project_copy(tmp_path), fake.kubeconfig(tmp_path / "kubeconfig"), fake, app)
