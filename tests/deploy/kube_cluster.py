"""The Kubernetes tests' view of a cluster: a project copy wired to it through a kubeconfig."""

from __future__ import annotations

import json
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from autodevhub_cli.core.adapters.kube import Kube, ObjectRef
from tests.helpers import REPO, run_cli
from tests.kubefake.server import KubeFake

DIGEST = "sha256:" + "1" * 64

API_VERSIONS = {
    "Namespace": "v1",
    "Service": "v1",
    "Secret": "v1",
    "ConfigMap": "v1",
    "Pod": "v1",
    "Event": "v1",
    "Deployment": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
    "Rollout": "argoproj.io/v1alpha1",
    "Ingress": "networking.k8s.io/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "Lease": "coordination.k8s.io/v1",
}


class Cluster:
    """A project copy wired to a cluster (the real one, or the double) through a kubeconfig."""

    def __init__(
        self, root: Path, kubeconfig: Path, fake: KubeFake | None, app: dict[str, str]
    ) -> None:
        self.root = root
        self.fake = fake
        self.kubeconfig = kubeconfig
        self.ns = f"adh-{secrets.token_hex(3)}"
        self.kube = Kube.connect(kubeconfig=str(kubeconfig))
        self.mark = ""
        self.env = {
            "AUTODEVHUB__KUBERNETES__KUBECONFIG": str(kubeconfig),
            "AUTODEVHUB__NAMESPACE": self.ns,
            "AUTODEVHUB__SMOKE__TIMEOUT_SECONDS": "10",
            # The third declared check is the latency budget; a loaded CI machine gets more.
            "AUTODEVHUB__SMOKE__CHECKS__2__LATENCY__BUDGET_MS": "2000",
            "AUTODEVHUB__SMOKE__URLS__FRONTEND": app["base"],
            "AUTODEVHUB__SMOKE__URLS__BACKEND": app["backend"],
            "AUTODEVHUB__SMOKE__PREVIEW_URLS__BACKEND": app["backend"],
        }

    def record_build(self, env: str, tag: str) -> None:
        """A recorded build; every new one changes the pod template (image, or a marker)."""
        builds = self.root / ".autodevhub" / "builds"
        builds.mkdir(parents=True, exist_ok=True)
        self.mark = tag
        names = ("backend", "worker", "frontend")
        images = [{"name": n, "tag": tag, "digest": DIGEST} for n in names]
        (builds / f"{env}.json").write_text(json.dumps({"images": images, "environment": env}))

    def cli(self, *args: str) -> tuple[int, str, str]:
        return run_cli(*args, "--project-dir", str(self.root), env=self.env)

    def deploy(self, env: str, *args: str) -> tuple[int, str, str]:
        mark = f"components.backend.env.RELEASE_MARK={self.mark or 'none'}"
        return self.cli(
            "deploy", "--env", env, "--skip-build", "--timeout", "60", "--set", mark, *args
        )

    def diff(self, env: str, *args: str) -> tuple[int, str, str]:
        """`diff` with the same values the last deploy had."""
        mark = f"components.backend.env.RELEASE_MARK={self.mark or 'none'}"
        return self.cli("diff", "--env", env, "--set", mark, *args)

    def releases(self, env: str) -> list[dict[str, Any]]:
        """The history the cluster keeps for the environment, oldest first."""
        code, out, err = self.cli("history", "--env", env, "--output", "json")
        assert code == 0, err
        return list(json.loads(out)["releases"])

    def release_file(self, env: str, release_id: str, filename: str) -> str:
        """A file a release applied, as the cluster keeps it (its release Secret)."""
        from autodevhub_cli.core.targets.kube_store import KubeReleaseDriver

        stored = {s.release.id: s for s in KubeReleaseDriver(self.kube, self.ns, env).load()}
        return stored[release_id].files[filename]

    def obj(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        scope = "" if kind == "Namespace" else (namespace or self.ns)
        return self.kube.get(ObjectRef(API_VERSIONS[kind], kind, scope, name))

    def objs(self, kind: str, selector: str | None = None) -> list[dict[str, Any]]:
        return self.kube.list_objects(API_VERSIONS[kind], kind, self.ns, selector)

    def patch_as(self, manager: str, kind: str, name: str, patch: dict[str, Any]) -> None:
        """A merge patch by another field manager (a person with kubectl, an HPA)."""
        resource = self.kube.resource(API_VERSIONS[kind], kind)
        resource.patch(
            body=patch,
            name=name,
            namespace=self.ns,
            content_type="application/merge-patch+json",
            field_manager=manager,
        )

    def wait(self, what: str, check: Any, seconds: float = 30) -> Any:
        """Poll `check()` until it returns something truthy."""
        deadline = time.monotonic() + seconds
        while True:
            found = check()
            if found:
                return found
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.2)


def project_copy(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for folder in ("environments", "templates"):
        shutil.copytree(REPO / folder, root / folder)
    return root


def active_hash(cluster: Cluster) -> str:
    active = cluster.obj("Service", "backend")
    assert active is not None
    return str(active["spec"]["selector"]["rollouts-pod-template-hash"])
