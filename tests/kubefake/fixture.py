"""Pytest fixtures: a started `KubeFake` and clients pointed at it.

Use from a conftest with `from tests.kubefake.fixture import kube, kube_client  # noqa: F401`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .server import KubeFake


@pytest.fixture
def kube() -> Iterator[KubeFake]:
    """A started KubeFake (no auto_ready; set `kube.auto_ready = True` to get one)."""
    with KubeFake() as fake:
        yield fake
    # A 500 from the fake is a bug in the fake, not in the code under test: say so loudly.
    assert not fake.server_errors, "kubefake crashed:\n" + "\n".join(fake.server_errors)


@pytest.fixture
def kubeconfig(kube: KubeFake, tmp_path: Path) -> Path:
    """A kubeconfig file for `kube`, context `kubefake`, namespace `default`."""
    return kube.kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kube_client(kubeconfig: Path) -> Iterator[Any]:
    """A `kubernetes.client.ApiClient` loaded from the fake's kubeconfig."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    api = client.ApiClient(configuration)
    yield api
    api.close()


@pytest.fixture
def kube_dynamic(kube_client: Any, tmp_path: Path) -> Any:
    """A `kubernetes.dynamic.DynamicClient` with its discovery cache in tmp_path."""
    from kubernetes.dynamic import DynamicClient

    return DynamicClient(kube_client, cache_file=str(tmp_path / "discovery.json"))
