"""`autodevhub deploy` on Kubernetes, over real HTTP.

By default against tests/kubefake, the API server double (the real `kubernetes` client talks to
it; it plays the Deployment, Job and Argo Rollouts controllers), with the smoke checks hitting
the real backend and nginx (the image's config) on 127.0.0.1 in place of the Ingress and the
preview Service.

The same suite runs against a real cluster (kind, k3d) with one switch:
`AUTODEVHUB_K8S_KUBECONFIG=~/.kube/config`. It then needs `AUTODEVHUB_K8S_IMAGES` (the JSON of
`autodevhub build --env staging --push --output json`, images the cluster can pull), Argo Rollouts
and the Prometheus operator CRDs installed, and the smoke URLs the cluster exposes
(`AUTODEVHUB__SMOKE__BASE_URL`, `..._BACKEND_URL`, `..._PREVIEW_BACKEND_URL`); each test uses
its own namespace, and tests that drive the double's controls (crash-looping pods, recorded
requests) are skipped with that reason.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autodevhub_cli.core.adapters.kube import Kube, ObjectRef
from tests.helpers import REPO, run_cli
from tests.kubefake import controllers
from tests.kubefake.server import KubeFake

sys.path.insert(0, str(REPO / "tests" / "web"))
from web_servers import build_dist, missing_browser_tools, run_backend, run_nginx

pytestmark = [pytest.mark.k8s, pytest.mark.browser]
DIGEST = "sha256:" + "1" * 64
REAL = os.environ.get("AUTODEVHUB_K8S_KUBECONFIG")
needs_fake = pytest.mark.skipif(
    REAL is not None, reason="drives the API test double's own controls (pods, requests)"
)
API_VERSIONS = {
    "Namespace": "v1",
    "Service": "v1",
    "Secret": "v1",
    "ConfigMap": "v1",
    "Deployment": "apps/v1",
    "Rollout": "argoproj.io/v1alpha1",
    "Ingress": "networking.k8s.io/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "Lease": "coordination.k8s.io/v1",
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str] | None]:
    """The real backend and nginx: what the Ingress and the preview Service would reach."""
    if REAL is not None:
        yield None  # the cluster serves the app; smoke URLs come from the environment
        return
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


class Cluster:
    """A project copy wired to a cluster (the double, or a real one) through a kubeconfig."""

    def __init__(
        self, root: Path, kubeconfig: Path, fake: KubeFake | None, app: dict[str, str] | None
    ) -> None:
        self.root = root
        self.fake = fake
        self.ns = f"adh-{secrets.token_hex(3)}"
        self.kube = Kube.connect(kubeconfig=str(kubeconfig))
        self.mark = ""
        self.env = {
            "AUTODEVHUB__KUBERNETES__KUBECONFIG": str(kubeconfig),
            "AUTODEVHUB__NAMESPACE": self.ns,
            "AUTODEVHUB__SMOKE__TIMEOUT_SECONDS": "10",
            "AUTODEVHUB__SMOKE__LATENCY_BUDGET_MS": "2000",
        }
        if app is not None:
            self.env.update(
                {
                    "AUTODEVHUB__SMOKE__BASE_URL": app["base"],
                    "AUTODEVHUB__SMOKE__BACKEND_URL": app["backend"],
                    "AUTODEVHUB__SMOKE__PREVIEW_BACKEND_URL": app["backend"],
                }
            )

    def record_build(self, env: str, tag: str) -> None:
        """A recorded build; every new one changes the pod template (image, or a marker)."""
        builds = self.root / ".autodevhub" / "builds"
        builds.mkdir(parents=True, exist_ok=True)
        self.mark = tag
        if REAL is not None:
            data = json.loads(Path(os.environ["AUTODEVHUB_K8S_IMAGES"]).read_text())
        else:
            images = [{"name": n, "tag": tag, "digest": DIGEST} for n in ("backend", "frontend")]
            data = {"images": images}
        (builds / f"{env}.json").write_text(json.dumps({**data, "environment": env}))

    def cli(self, *args: str) -> tuple[int, str, str]:
        return run_cli(*args, "--project-dir", str(self.root), env=self.env)

    def deploy(self, env: str, *args: str) -> tuple[int, str, str]:
        mark = f"components.backend.env.RELEASE_MARK={self.mark or 'none'}"
        return self.cli(
            "deploy", "--env", env, "--skip-build", "--timeout", "20", "--set", mark, *args
        )

    def releases(self, env: str) -> list[dict[str, Any]]:
        folder = self.root / ".autodevhub" / "releases" / env
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*/release.json"))]

    def obj(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        scope = "" if kind == "Namespace" else (namespace or self.ns)
        return self.kube.get(ObjectRef(API_VERSIONS[kind], kind, scope, name))

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


@pytest.fixture()
def cluster(tmp_path: Path, app: dict[str, str] | None) -> Iterator[Cluster]:
    root = tmp_path / "project"
    for folder in ("environments", "templates"):
        shutil.copytree(REPO / folder, root / folder)
    if REAL is not None:
        made = Cluster(root, Path(REAL).expanduser(), None, app)
        yield made
        made.kube.delete(ObjectRef("v1", "Namespace", "", made.ns))
        return
    with KubeFake(auto_ready=True) as fake:
        yield Cluster(root, fake.kubeconfig(tmp_path / "kubeconfig"), fake, app)


def test_apply_creates_then_updates(cluster: Cluster) -> None:
    cluster.record_build("staging", "c-00000000000000a1")
    code, _, err = cluster.deploy("staging")
    assert code == 0, err
    ns = cluster.ns
    deployment = cluster.obj("Deployment", "backend", ns)
    assert deployment is not None
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "@sha256:" in container["image"]
    assert {"name": "RELEASE_MARK", "value": "c-00000000000000a1"} in container["env"]
    for kind, name in [
        ("Namespace", ns),
        ("Service", "frontend"),
        ("Ingress", "autodevhub"),
        ("HorizontalPodAutoscaler", "backend"),
        ("NetworkPolicy", "backend"),
    ]:
        namespace = "" if kind == "Namespace" else ns
        assert cluster.obj(kind, name, namespace) is not None, f"{kind} {name} missing"
    assert cluster.releases("staging")[-1]["status"] == "deployed"
    generation = deployment["metadata"]["generation"]
    # A second release changes the image: the same objects are updated in place.
    cluster.record_build("staging", "c-00000000000000a2")
    code, _, err = cluster.deploy("staging")
    assert code == 0, err
    updated = cluster.obj("Deployment", "backend", ns)
    assert updated is not None and updated["metadata"]["generation"] == generation + 1
    assert updated["metadata"]["uid"] == deployment["metadata"]["uid"]


@needs_fake
def test_apply_is_server_side_in_dependency_order(cluster: Cluster) -> None:
    cluster.record_build("staging", "c-00000000000000a3")
    assert cluster.deploy("staging")[0] == 0
    assert cluster.fake is not None
    applies = cluster.fake.requests_to("PATCH")
    assert applies and all(r.query.get("fieldManager") == "autodevhub" for r in applies)
    assert all(r.content_type == "application/apply-patch+yaml" for r in applies)
    # The Namespace first, the migration Job complete before the workloads.
    paths = [r.path for r in applies]
    assert "/namespaces/" + cluster.ns in paths[0]
    job = next(i for i, p in enumerate(paths) if "/jobs/" in p)
    assert job < next(i for i, p in enumerate(paths) if "/deployments/" in p)


def test_hpa_owns_replicas_of_an_existing_deployment(cluster: Cluster) -> None:
    cluster.record_build("staging", "c-00000000000000b1")
    assert cluster.deploy("staging")[0] == 0
    ns = cluster.ns
    # The HPA scaled the backend to 3; the next deploy must not set it back to 1.
    cluster.patch_as(
        "horizontal-pod-autoscaler", "Deployment", "backend", {"spec": {"replicas": 3}}
    )
    cluster.record_build("staging", "c-00000000000000b2")
    code, _, err = cluster.deploy("staging")
    assert code == 0, err
    deployment = cluster.obj("Deployment", "backend", ns)
    assert deployment is not None and deployment["spec"]["replicas"] == 3


def test_prune_removes_a_dropped_object(cluster: Cluster) -> None:
    cluster.record_build("staging", "c-00000000000000c1")
    assert cluster.deploy("staging")[0] == 0
    ns = cluster.ns
    assert cluster.obj("ServiceMonitor", "backend", ns) is not None
    code, out, err = cluster.cli(
        "deploy",
        "--env",
        "staging",
        "--skip-build",
        "--dry-run",
        "--set",
        "monitoring.enabled=false",
    )
    assert code == 0, err
    assert "ServiceMonitor backend" in out and "pruned" in out
    assert cluster.obj("ServiceMonitor", "backend", ns) is not None, "dry run touches nothing"
    code, _, err = cluster.deploy("staging", "--set", "monitoring.enabled=false")
    assert code == 0, err
    assert cluster.obj("ServiceMonitor", "backend", ns) is None
    assert cluster.obj("Service", "backend-metrics", ns) is None
    assert cluster.obj("Service", "backend", ns) is not None


@needs_fake
def test_deployment_that_never_becomes_ready_is_diagnosed_and_rolled_back(
    cluster: Cluster,
) -> None:
    cluster.record_build("staging", "c-00000000000000d1")
    assert cluster.deploy("staging")[0] == 0
    good = cluster.releases("staging")[-1]
    ns = cluster.ns
    fake = cluster.fake
    assert fake is not None
    fake.auto_ready = False

    def controller(event: Any) -> None:
        obj = event.object
        image = json.dumps(obj.get("spec", {}).get("template", {}))
        if obj.get("kind") == "Deployment" and "c-00000000000000d2" in image:
            labels = obj["spec"]["selector"]["matchLabels"]
            if not fake.objects(kind="Pod", namespace=ns):
                fake.add_pod(
                    ns,
                    "backend-7d9f-x2x",
                    labels,
                    phase="Running",
                    containers=["backend"],
                    container_statuses=[
                        {
                            "name": "backend",
                            "ready": False,
                            "restartCount": 5,
                            "image": "x",
                            "imageID": "",
                            "state": {
                                "waiting": {
                                    "reason": "CrashLoopBackOff",
                                    "message": "back-off 5m0s restarting failed container",
                                }
                            },
                        }
                    ],
                )
                fake.add_event(
                    ns,
                    "Pod",
                    "backend-7d9f-x2x",
                    "BackOff",
                    "Back-off restarting failed container backend",
                )
                fake.set_pod_log(
                    ns,
                    "backend-7d9f-x2x",
                    "starting\nsqlalchemy.exc.OperationalError: could not connect\n",
                )
            return
        controllers.settle(fake.cluster, event)

    fake.on_write(controller)
    cluster.record_build("staging", "c-00000000000000d2")
    code, _, err = cluster.deploy("staging")
    assert code == 1, err
    assert f"Deployment backend in {ns} cannot start" in err
    assert "pod backend-7d9f-x2x: CrashLoopBackOff" in err
    assert "Back-off restarting failed container" in err
    assert "could not connect" in err
    assert f"Rolled back to release {good['id']}" in err
    deployment = cluster.obj("Deployment", "backend", ns)
    assert deployment is not None
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert "c-00000000000000d1" in image
    assert cluster.releases("staging")[-1]["status"] == "failed"


def test_blue_green_preview_is_checked_then_promoted(cluster: Cluster) -> None:
    cluster.record_build("prod", "c-00000000000000e1")
    code, _, err = cluster.deploy("prod", "--promote")
    assert code == 0, err
    ns = cluster.ns
    first = cluster.obj("Rollout", "backend", ns)
    assert first is not None
    stable = first["status"]["blueGreen"]["activeSelector"]
    cluster.record_build("prod", "c-00000000000000e2")
    code, out, err = cluster.deploy("prod")
    assert code == 0, err
    assert "is up as the preview" in out
    assert cluster.releases("prod")[-1]["status"] == "preview"
    rollout = cluster.obj("Rollout", "backend", ns)
    assert rollout is not None and rollout["status"]["phase"] == "Paused"
    active = cluster.obj("Service", "backend", ns)
    assert active is not None
    assert active["spec"]["selector"]["rollouts-pod-template-hash"] == stable
    code, out, err = cluster.cli("promote", "--env", "prod", "--timeout", "20")
    assert code == 0, err
    rollout = cluster.obj("Rollout", "backend", ns)
    assert rollout is not None and rollout["status"]["phase"] == "Healthy"
    assert rollout["status"]["blueGreen"]["activeSelector"] == rollout["status"]["currentPodHash"]
    assert cluster.releases("prod")[-1]["status"] == "deployed"


def test_blue_green_failed_check_aborts_and_leaves_the_active_service(cluster: Cluster) -> None:
    cluster.record_build("prod", "c-00000000000000f1")
    assert cluster.deploy("prod", "--promote")[0] == 0
    ns = cluster.ns
    active = cluster.obj("Service", "backend", ns)
    assert active is not None
    stable = active["spec"]["selector"]["rollouts-pod-template-hash"]
    cluster.record_build("prod", "c-00000000000000f2")
    code, _, err = cluster.deploy(
        "prod",
        "--promote",
        "--set",
        "smoke.checks=[{name: preview api, target: backend, path: /api/nope, status: 200}]",
        "--set",
        "smoke.timeout_seconds=2",
    )
    assert code == 3, err
    assert "preview api" in err and "Rolled back" in err
    aborts = (
        []
        if cluster.fake is None
        else [
            r
            for r in cluster.fake.requests_to("PATCH", "/rollouts/backend/status")
            if b'"abort"' in r.raw
        ]
    )
    assert aborts or cluster.fake is None, "the rollout was aborted"
    active = cluster.obj("Service", "backend", ns)
    assert active is not None
    assert active["spec"]["selector"]["rollouts-pod-template-hash"] == stable
    assert cluster.releases("prod")[-1]["status"] == "failed"


def test_lease_blocks_a_second_deploy(cluster: Cluster) -> None:
    cluster.record_build("staging", "c-0000000000000101")
    assert cluster.deploy("staging")[0] == 0
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    cluster.kube.create(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": "autodevhub-staging",
                "namespace": cluster.ns,
                "annotations": {"autodevhub.io/command": "deploy"},
            },
            "spec": {
                "holderIdentity": "ci@runner-7 pid 4242",
                "leaseDurationSeconds": 60,
                "acquireTime": now,
                "renewTime": now,
            },
        }
    )
    code, _, err = cluster.deploy("staging")
    assert code == 1
    assert f"holds Lease {cluster.ns}/autodevhub-staging: ci@runner-7 pid 4242" in err


def test_a_stale_lease_is_taken_over(cluster: Cluster) -> None:
    cluster.record_build("staging", "c-0000000000000102")
    assert cluster.deploy("staging")[0] == 0
    cluster.kube.create(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "autodevhub-staging", "namespace": cluster.ns},
            "spec": {
                "holderIdentity": "ci@gone pid 1",
                "leaseDurationSeconds": 60,
                "acquireTime": "2026-01-01T00:00:00.000000Z",
                "renewTime": "2026-01-01T00:00:00.000000Z",
            },
        }
    )
    code, _, err = cluster.deploy("staging")
    assert code == 0, err
    assert cluster.obj("Lease", "autodevhub-staging") is None


def test_conflicts_are_reported_and_force_takes_ownership(cluster: Cluster) -> None:
    cluster.record_build("staging", "c-0000000000000111")
    assert cluster.deploy("staging")[0] == 0
    ns = cluster.ns
    cluster.patch_as("kubectl-edit", "Service", "frontend", {"spec": {"type": "NodePort"}})
    code, _, err = cluster.deploy("staging")
    assert code == 1
    assert f"Applying Service frontend in {ns} conflicts" in err
    assert ".spec.type" in err and "kubectl-edit" in err and "--force-conflicts" in err
    code, _, err = cluster.deploy("staging", "--force-conflicts")
    assert code == 0, err
    service = cluster.obj("Service", "frontend", ns)
    assert service is not None and service["spec"]["type"] == "ClusterIP"


def test_diff_shows_what_apply_would_change(cluster: Cluster) -> None:
    cluster.record_build("staging", "c-0000000000000121")
    assert cluster.deploy("staging")[0] == 0
    code, out, err = cluster.cli(
        "diff", "--env", "staging", "--set", "components.frontend.replicas=4"
    )
    assert code == 0, err
    assert "Deployment frontend" in out
    assert "-  replicas: 1" in out and "+  replicas: 4" in out
    frontend = cluster.obj("Deployment", "frontend")
    assert frontend is not None and frontend["spec"]["replicas"] == 1


def test_secrets_set_restarts_users_and_never_leaks(cluster: Cluster, tmp_path: Path) -> None:
    import base64

    cluster.record_build("staging", "c-0000000000000131")
    assert cluster.deploy("staging")[0] == 0
    ns = cluster.ns
    before = cluster.obj("Deployment", "backend", ns)
    assert before is not None
    planted = "sk-planted-" + "7f3a9c" * 4
    values = tmp_path / "values.env"
    values.write_text(
        f"anthropic-api-key={planted}\ndatabase-url=postgresql://app:pw-{planted}@db/x\n"
    )
    code, out, err = cluster.cli("secrets", "set", "--env", "staging", "--from-file", str(values))
    assert code == 0, err
    secret = cluster.obj("Secret", "autodevhub-secrets", ns)
    assert secret is not None
    assert base64.b64decode(secret["data"]["anthropic-api-key"]).decode() == planted
    after = cluster.obj("Deployment", "backend", ns)
    assert (
        after is not None
        and after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    )
    notes = after["spec"]["template"]["metadata"]["annotations"]
    assert "autodevhub.io/secret-checksum-autodevhub-secrets" in notes
    assert "restarted Deployment backend" in out and "smoke checks passed" in out
    # Rotation of one key, value on stdin.
    rotated = tmp_path / "new-key"
    rotated.write_text(planted.replace("7f", "8e") + "\n")
    code, out2, err2 = cluster.cli(
        "secrets", "rotate", "--env", "staging", "anthropic-api-key", "--from-file", str(rotated)
    )
    assert code == 0, err2
    # A later deploy keeps the restart annotation (another field manager owns it) and works.
    code, out3, err3 = cluster.deploy("staging")
    assert code == 0, err3
    # The planted value (plain or base64) appears in no output, record, rendered file or log.
    encoded = base64.b64encode(planted.encode()).decode()
    texts = [out, err, out2, err2, out3, err3, cluster.cli("render", "--env", "staging")[1]]
    texts += [
        p.read_text(errors="replace")
        for p in (cluster.root / ".autodevhub").rglob("*")
        if p.is_file()
    ]
    debug_log = Path("/tmp/autodevhub-debug.log")
    if debug_log.exists():
        texts.append(debug_log.read_text(errors="replace"))
    for text in texts:
        assert planted not in text and encoded not in text


def test_secret_values_on_the_command_line_are_refused(cluster: Cluster) -> None:
    code, _, err = cluster.cli("secrets", "set", "--env", "staging", "anthropic-api-key=sk-x")
    assert code == 2
    assert "shell history" in err and "sk-x" not in err


def test_unreferenced_secret_key_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    values = tmp_path / "v.env"
    values.write_text("anthropic-api-kee=sk-typo\n")
    code, _, err = cluster.cli("secrets", "set", "--env", "staging", "--from-file", str(values))
    assert code == 2
    assert "anthropic-api-kee" in err and "not referenced" in err and "sk-typo" not in err


@needs_fake
def test_smoke_checks_through_port_forward(
    cluster: Cluster, app: dict[str, str] | None, tmp_path: Path
) -> None:
    assert app is not None
    standin = tmp_path / "kubectl"
    standin.write_text(
        f'#!/bin/sh\nexec {sys.executable} {REPO}/tests/deploy/kubectl_standin.py "$@"\n'
    )
    standin.chmod(0o755)
    log = tmp_path / "kubectl.log"
    backend = app["backend"].removeprefix("http://")
    cluster.env.update(
        {
            "AUTODEVHUB_KUBECTL": str(standin),
            "KUBECTL_STANDIN_LOG": str(log),
            "KUBECTL_STANDIN_TARGETS": json.dumps(
                {
                    "frontend": app["base"].removeprefix("http://"),
                    "backend": backend,
                    "backend-preview": backend,
                }
            ),
            "AUTODEVHUB__SMOKE__PORT_FORWARD": "true",
        }
    )
    for name in ("BASE_URL", "BACKEND_URL", "PREVIEW_BACKEND_URL"):
        del cluster.env[f"AUTODEVHUB__SMOKE__{name}"]
    cluster.record_build("prod", "c-0000000000000141")
    code, _, err = cluster.deploy("prod", "--promote")
    assert code == 0, err
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    services = [c[1] for c in calls]
    assert "svc/frontend" in services and "svc/backend" in services
    first = calls[0]
    assert first[:3] == ["port-forward", "svc/frontend", ":80"]
    assert first[first.index("-n") + 1] == cluster.ns
    assert "--kubeconfig" in first
    cluster.record_build("prod", "c-0000000000000142")
    code, _, err = cluster.deploy("prod")
    assert code == 0, err
    assert "svc/backend-preview" in log.read_text(), "the preview is checked through its Service"
