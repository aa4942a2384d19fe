"""The real control plane the Kubernetes tests run against: `scripts/local-cluster.sh`.

kube-apiserver, etcd, kube-controller-manager, kube-scheduler, kwok nodes and the Argo Rollouts
controller, built from Go modules. `AUTODEVHUB_K8S_KUBECONFIG` points the suite at any other
cluster instead. Locally a missing control plane skips the tests with how to start it; in CI
(`AUTODEVHUB_REQUIRE_INTEGRATION=1`) that skip is a failure, and `.ci/run` starts it first.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.helpers import REPO

SCRIPT = REPO / "scripts" / "local-cluster.sh"


def _export_line(output: str) -> Path | None:
    for line in output.splitlines():
        if line.startswith("export KUBECONFIG="):
            return Path(line.split("=", 1)[1].strip())
    return None


@functools.cache
def kubeconfig() -> tuple[Path | None, str]:
    """(kubeconfig of a running cluster, '') or (None, why there is none)."""
    given = os.environ.get("AUTODEVHUB_K8S_KUBECONFIG")
    if given:
        return Path(given).expanduser(), ""
    status = subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True, text=True)
    if status.returncode == 0 and _export_line(status.stdout):
        return _export_line(status.stdout), ""
    built = subprocess.run(
        ["bash", str(REPO / "scripts" / "cluster" / "build.sh"), "--check"],
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        return None, (
            "no Kubernetes control plane: run `bash scripts/local-cluster.sh up` (the first run "
            "builds it from Go modules, about 10 minutes)"
        )
    up = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True, timeout=300)
    path = _export_line(up.stdout)
    if up.returncode != 0 or path is None:
        return None, f"`scripts/local-cluster.sh up` failed: {up.stderr.strip()[-800:]}"
    return path, ""


def connect_with_engine() -> tuple[Any, Path]:
    """(Kube connection, kubeconfig) of the control plane, for a test that also needs the
    Docker engine, the registry and the stand-in bases; skips, saying what is missing."""
    import pytest

    from autodevhub_cli.core.adapters.kube import Kube
    from tests.images.conftest import _engine_problem

    problem = _engine_problem()
    if problem:
        pytest.skip(problem)
    path, why = kubeconfig()
    if path is None:
        pytest.skip(why)
    return Kube.connect(kubeconfig=str(path)), path


def host_path_volume(
    name: str, folder: Path, namespace: str, claim: str, size: str
) -> dict[str, Any]:
    """A PersistentVolume on a folder of the host, bound ahead to one claim: storage for a
    claim on a cluster without a storage provisioner (the local cluster has none)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": str(folder), "type": "Directory"},
            "claimRef": {"namespace": namespace, "name": claim},
        },
    }
