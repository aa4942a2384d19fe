"""`autodevhub deploy` on Kubernetes, against a real control plane.

kube-apiserver, etcd, kube-controller-manager, kube-scheduler, kwok nodes and the Argo Rollouts
controller (`scripts/local-cluster.sh`, built from Go modules; `AUTODEVHUB_K8S_KUBECONFIG`
points the suite at any other cluster). kwok makes pods Running and Ready but runs no process,
so the smoke checks hit the real backend and nginx (the image's config) on 127.0.0.1 in place of
the Ingress and the preview Service; images are never pulled, so a recorded build with any
digest deploys. What that proves: the objects, field ownership, controllers (Deployment, Job,
HPA, garbage collector, Argo Rollouts), RBAC and status timing of a real cluster. What it
cannot: that the images start, or that traffic reaches the pods.

Two tests use tests/kubefake, the API double, each saying why: the request order of a deploy
(seen only by the server), and log lines in a diagnosis (kwok's containers print none).
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autodevhub_cli.core.adapters.kube import Kube, ObjectRef
from tests.deploy import local_cluster
from tests.helpers import REPO, run_cli
from tests.kubefake import controllers
from tests.kubefake.server import KubeFake

sys.path.insert(0, str(REPO / "tests" / "web"))
from web_servers import build_dist, missing_browser_tools, run_backend, run_nginx

pytestmark = [pytest.mark.k8s, pytest.mark.browser]
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
            "AUTODEVHUB__SMOKE__LATENCY_BUDGET_MS": "2000",
            "AUTODEVHUB__SMOKE__BASE_URL": app["base"],
            "AUTODEVHUB__SMOKE__BACKEND_URL": app["backend"],
            "AUTODEVHUB__SMOKE__PREVIEW_BACKEND_URL": app["backend"],
        }

    def record_build(self, env: str, tag: str) -> None:
        """A recorded build; every new one changes the pod template (image, or a marker)."""
        builds = self.root / ".autodevhub" / "builds"
        builds.mkdir(parents=True, exist_ok=True)
        self.mark = tag
        images = [{"name": n, "tag": tag, "digest": DIGEST} for n in ("backend", "frontend")]
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
        folder = self.root / ".autodevhub" / "releases" / env
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*/release.json"))]

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


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for folder in ("environments", "templates"):
        shutil.copytree(REPO / folder, root / folder)
    return root


@pytest.fixture()
def cluster(tmp_path: Path, app: dict[str, str]) -> Iterator[Cluster]:
    """A namespace of its own on the real control plane, deleted afterwards."""
    kubeconfig, why = local_cluster.kubeconfig()
    if kubeconfig is None:
        pytest.skip(why)
    made = Cluster(_project(tmp_path), kubeconfig, None, app)
    yield made
    made.kube.delete(ObjectRef("v1", "Namespace", "", made.ns))


@pytest.fixture()
def fake_cluster(tmp_path: Path, app: dict[str, str]) -> Iterator[Cluster]:
    """The API double, for what the real cluster cannot show (said at each use)."""
    with KubeFake(auto_ready=True) as fake:
        yield Cluster(_project(tmp_path), fake.kubeconfig(tmp_path / "kubeconfig"), fake, app)


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
    # The wait returned once the controller had observed the new generation and the new pods
    # were available: none of the pods left is of the old template.
    assert updated["status"]["observedGeneration"] == generation + 1
    assert updated["status"]["updatedReplicas"] == updated["spec"]["replicas"]


def test_apply_is_server_side_in_dependency_order(fake_cluster: Cluster) -> None:
    """On the double: the order of a deploy's requests is seen only by the server."""
    cluster = fake_cluster
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


def test_hpa_at_min_replicas_keeps_them_through_a_deploy(cluster: Cluster) -> None:
    """While replicas equal minReplicas the HPA writes nothing; the deploy that drops
    `replicas` from its apply must hand the field over, or the Deployment falls to 1."""
    import threading

    two = ["--set", "components.backend.replicas=2"]
    two += ["--set", "components.backend.autoscaling.min_replicas=2"]
    cluster.record_build("staging", "c-00000000000000b3")
    assert cluster.deploy("staging", *two)[0] == 0
    seen: set[int] = set()
    stop = threading.Event()

    def watch() -> None:  # every value spec.replicas takes while the next deploys run
        while not stop.is_set():
            live = cluster.obj("Deployment", "backend")
            if live is not None:
                seen.add(live["spec"]["replicas"])
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for tag in ("c-00000000000000b4", "c-00000000000000b5"):
            cluster.record_build("staging", tag)
            code, _, err = cluster.deploy("staging", *two)
            assert code == 0, err
            deployment = cluster.obj("Deployment", "backend")
            assert deployment is not None and deployment["spec"]["replicas"] == 2
            assert deployment["status"].get("availableReplicas") == 2
    finally:
        stop.set()
        watcher.join()
    assert seen == {2}, f"spec.replicas took the values {sorted(seen)}"
    owners = [
        m["manager"]
        for m in deployment["metadata"]["managedFields"]
        if '"f:replicas"' in json.dumps(m.get("fieldsV1", {}))
    ]
    assert "autodevhub" not in owners and owners, owners


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


def test_prune_keeps_the_jobs_a_cronjob_made(cluster: Cluster) -> None:
    """The API server copies a Job's labels from its pod template, so the backup CronJob's
    Jobs carry the environment's labels; prune must leave them to their CronJob."""
    cluster.record_build("staging", "c-00000000000000c2")
    assert cluster.deploy("staging")[0] == 0
    cronjob = cluster.obj("CronJob", "backup")
    assert cronjob is not None
    # What the CronJob controller (and `kubectl create job --from=cronjob/backup`) makes:
    # the job template, no labels of its own, owned by the CronJob.
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "backup-manual-1",
            "namespace": cluster.ns,
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": "backup",
                    "uid": cronjob["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": cronjob["spec"]["jobTemplate"]["spec"],
    }
    made = cluster.kube.create(job)
    labels = made["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "autodevhub", "labels defaulted"
    cluster.record_build("staging", "c-00000000000000c3")
    code, out, err = cluster.diff("staging")
    assert code == 0, err
    assert "backup-manual-1" not in out
    assert cluster.deploy("staging")[0] == 0
    survived = cluster.obj("Job", "backup-manual-1")
    assert survived is not None and not survived["metadata"].get("deletionTimestamp")


def test_a_crash_looping_release_is_diagnosed_and_rolled_back(cluster: Cluster) -> None:
    """kwok makes the new release's pods crash-loop (scripts/cluster/crash-loop-stage.yaml)."""
    cluster.record_build("staging", "c-00000000000000d1")
    assert cluster.deploy("staging")[0] == 0
    good = cluster.releases("staging")[-1]
    cluster.record_build("staging", "c-00000000000000d2")
    crash = ["--set", "components.backend.env.KWOK_CRASH_LOOP='true'"]
    code, _, err = cluster.deploy("staging", *crash)
    assert code == 1, err
    assert f"Deployment backend in {cluster.ns} cannot start" in err
    assert f"Rolled back to release {good['id']}" in err
    # The pod blamed is one of the new release's, not a terminating one of the old release.
    blamed = err.split("pod ", 1)[1].split(":", 1)[0]
    bad_sets = [
        rs
        for rs in cluster.objs("ReplicaSet", "app.kubernetes.io/component=backend")
        if "c-00000000000000d2" in json.dumps(rs["spec"]["template"])
    ]
    assert len(bad_sets) == 1
    assert blamed.startswith(f"backend-{bad_sets[0]['metadata']['labels']['pod-template-hash']}-")
    assert f"pod {blamed}: CrashLoopBackOff" in err
    assert "BackOff: Back-off restarting failed container" in err
    # The rollback waited while the failed release's pods were still terminating (they hold a
    # grace-period finalizer for seconds): their crash status blamed nothing.
    assert "The rollback" not in err
    deployment = cluster.obj("Deployment", "backend")
    assert deployment is not None
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert "c-00000000000000d1" in image
    assert cluster.releases("staging")[-1]["status"] == "failed"
    # Fixed, the next release deploys: a stale condition of the failed one decides nothing.
    cluster.record_build("staging", "c-00000000000000d3")
    code, _, err = cluster.deploy("staging")
    assert code == 0, err


def test_diagnosis_names_events_and_log_lines(fake_cluster: Cluster) -> None:
    """On the double: kwok's simulated containers print no log lines."""
    cluster = fake_cluster
    cluster.record_build("staging", "c-00000000000000d4")
    assert cluster.deploy("staging")[0] == 0
    good = cluster.releases("staging")[-1]
    ns = cluster.ns
    fake = cluster.fake
    assert fake is not None
    fake.auto_ready = False

    def controller(event: Any) -> None:
        obj = event.object
        image = json.dumps(obj.get("spec", {}).get("template", {}))
        if obj.get("kind") == "Deployment" and "c-00000000000000d5" in image:
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
    cluster.record_build("staging", "c-00000000000000d5")
    code, _, err = cluster.deploy("staging")
    assert code == 1, err
    assert "pod backend-7d9f-x2x: CrashLoopBackOff" in err
    assert "Back-off restarting failed container" in err
    assert "could not connect" in err
    assert f"Rolled back to release {good['id']}" in err


def _active_hash(cluster: Cluster) -> str:
    active = cluster.obj("Service", "backend")
    assert active is not None
    return str(active["spec"]["selector"]["rollouts-pod-template-hash"])


def test_blue_green_preview_is_checked_then_promoted(cluster: Cluster) -> None:
    cluster.record_build("prod", "c-00000000000000e1")
    code, _, err = cluster.deploy("prod", "--promote")
    assert code == 0, err
    first = cluster.obj("Rollout", "backend")
    assert first is not None
    stable = first["status"]["blueGreen"]["activeSelector"]
    cluster.record_build("prod", "c-00000000000000e2")
    code, out, err = cluster.deploy("prod")
    assert code == 0, err
    assert "is up as the preview" in out
    assert cluster.releases("prod")[-1]["status"] == "preview"
    rollout = cluster.obj("Rollout", "backend")
    assert rollout is not None and rollout["status"]["phase"] == "Paused"
    assert _active_hash(cluster) == stable
    preview = cluster.obj("Service", "backend-preview")
    assert preview is not None
    assert preview["spec"]["selector"]["rollouts-pod-template-hash"] != stable
    code, out, err = cluster.cli("promote", "--env", "prod", "--timeout", "60")
    assert code == 0, err
    rollout = cluster.obj("Rollout", "backend")
    assert rollout is not None and rollout["status"]["phase"] == "Healthy"
    assert rollout["status"]["blueGreen"]["activeSelector"] == rollout["status"]["currentPodHash"]
    assert _active_hash(cluster) == rollout["status"]["currentPodHash"]
    assert cluster.releases("prod")[-1]["status"] == "deployed"


def test_blue_green_deploys_again_and_again_while_argo_owns_the_selectors(
    cluster: Cluster,
) -> None:
    """Argo Rollouts writes `rollouts-pod-template-hash` into the active and preview
    Services' selectors (an atomic map): later applies must leave the selector to it."""
    cluster.record_build("prod", "c-00000000000000e3")
    code, _, err = cluster.deploy("prod", "--promote")
    assert code == 0, err
    service = cluster.obj("Service", "backend")
    assert service is not None
    owners = {
        m["manager"]
        for m in service["metadata"]["managedFields"]
        if "f:selector" in json.dumps(m.get("fieldsV1", {}))
    }
    assert "rollouts-controller" in owners, owners
    hashes = []
    for tag in ("c-00000000000000e4", "c-00000000000000e5"):
        cluster.record_build("prod", tag)
        code, _, err = cluster.deploy("prod", "--promote")
        assert code == 0, err
        rollout = cluster.obj("Rollout", "backend")
        assert rollout is not None
        current = rollout["status"]["currentPodHash"]
        assert _active_hash(cluster) == current, "the active Service selects the new version"
        hashes.append(current)
    assert len(set(hashes)) == 2
    # Right after a deploy, diff shows nothing: no fight over fields other managers own.
    code, out, err = cluster.diff("prod")
    assert code == 0, err
    assert out.strip() == "No changes.", out
    # Roll back to the release before: the active version switches back.
    code, out, err = cluster.cli("rollback", "--env", "prod", "--timeout", "60")
    assert code == 0, err
    rollout = cluster.obj("Rollout", "backend")
    assert rollout is not None
    template = json.dumps(rollout["spec"]["template"])
    assert "c-00000000000000e4" in template


def test_blue_green_failed_check_aborts_and_leaves_the_active_service(cluster: Cluster) -> None:
    cluster.record_build("prod", "c-00000000000000f1")
    assert cluster.deploy("prod", "--promote")[0] == 0
    stable = _active_hash(cluster)
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
    assert _active_hash(cluster) == stable
    assert cluster.releases("prod")[-1]["status"] == "failed"
    rollout = cluster.obj("Rollout", "backend")
    assert rollout is not None
    assert rollout["status"]["currentPodHash"] == stable
    assert "c-00000000000000f1" in json.dumps(rollout["spec"]["template"])


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
    # Right after a deploy: nothing (defaulted fields and other managers' fields are no change).
    code, out, err = cluster.diff("staging")
    assert code == 0, err
    assert out.strip() == "No changes.", out
    code, out, err = cluster.diff("staging", "--set", "components.frontend.replicas=4")
    assert code == 0, err
    assert "Deployment frontend" in out
    assert "-  replicas: 1" in out and "+  replicas: 4" in out
    frontend = cluster.obj("Deployment", "frontend")
    assert frontend is not None and frontend["spec"]["replicas"] == 1


def test_secrets_set_restarts_users_and_never_leaks(cluster: Cluster, tmp_path: Path) -> None:
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


def test_secrets_rotate_restarts_the_active_pods_of_a_rollout(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A changed pod template would park a new blue-green revision as the preview while the
    active pods keep the old value: a Rollout restarts through `spec.restartAt`."""
    cluster.record_build("prod", "c-0000000000000135")
    assert cluster.deploy("prod", "--promote")[0] == 0
    rollout = cluster.obj("Rollout", "backend")
    assert rollout is not None
    stable = rollout["status"]["currentPodHash"]
    selector = f"rollouts-pod-template-hash={stable}"
    old_pods = {p["metadata"]["name"] for p in cluster.objs("Pod", selector)}
    assert len(old_pods) == 2
    key = tmp_path / "key"
    key.write_text("sk-rotated-" + "5c" * 12 + "\n")
    code, out, err = cluster.cli(
        "secrets", "rotate", "--env", "prod", "anthropic-api-key", "--from-file", str(key)
    )
    assert code == 0, err
    assert "restarted Rollout backend" in out and "smoke checks passed" in out
    after = cluster.obj("Rollout", "backend")
    assert after is not None
    assert after["status"]["currentPodHash"] == stable, "no new revision"
    assert after["status"]["phase"] == "Healthy"
    assert after["status"]["restartedAt"] == after["spec"]["restartAt"]
    live = [p for p in cluster.objs("Pod", selector) if not p["metadata"].get("deletionTimestamp")]
    assert len(live) == 2 and not {p["metadata"]["name"] for p in live} & old_pods
    assert _active_hash(cluster) == stable


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


def test_smoke_checks_through_port_forward(
    cluster: Cluster, app: dict[str, str], tmp_path: Path
) -> None:
    """The cluster is real; `kubectl port-forward` is a stand-in that forwards to the local
    backend and nginx (kwok pods run no process): this proves the commands, the Services they
    name (the preview's before promotion) and the flow, not that traffic reaches a pod."""
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


def _least_privilege(cluster: Cluster, env: str) -> tuple[list[dict[str, Any]], Any]:
    """The Role and ClusterRole rules for what doctor says a deploy of `env` needs."""
    from autodevhub_cli.core.config import load_environment
    from autodevhub_cli.core.project import find_project
    from autodevhub_cli.core.render import render
    from autodevhub_cli.core.secrets import referenced_keys
    from autodevhub_cli.core.targets.access import required_permissions
    from autodevhub_cli.core.targets.kubernetes import PRUNE_KINDS

    project = find_project(cluster.root)
    environment = load_environment(project, env, [f"namespace={cluster.ns}"])
    docs = [m.document for m in render(project, environment).manifests]
    needed = required_permissions(
        cluster.kube, docs, cluster.ns, PRUNE_KINDS, sorted(referenced_keys(environment))
    )
    rules: dict[tuple[bool, str, str, str], list[str]] = {}
    for p in needed:
        rules.setdefault((bool(p.namespace), p.group, p.resource, p.name), []).append(p.verb)
    out = []
    for (namespaced, group, resource, name), verbs in rules.items():
        rule: dict[str, Any] = {"apiGroups": [group], "resources": [resource], "verbs": verbs}
        if name:
            rule["resourceNames"] = [name]
        out.append({"namespaced": namespaced, "rule": rule})
    return out, needed


def _service_account_kubeconfig(cluster: Cluster, path: Path, account: str) -> Path:
    """A kubeconfig that authenticates as a ServiceAccount with a bound token."""
    import yaml
    from kubernetes import client

    core = client.CoreV1Api(cluster.kube.api_client)
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    token = core.create_namespaced_service_account_token(account, cluster.ns, request)
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    server = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": server["cluster"]}],
        "users": [{"name": account, "user": {"token": token.status.token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": account}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_deploy_runs_with_exactly_the_permissions_doctor_lists(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Real RBAC: a ServiceAccount granted what doctor checks, and nothing else, deploys prod
    (blue-green, promote) and doctor passes its permission check; take one grant away and
    doctor names exactly that one."""
    ns, account = cluster.ns, "deployer"
    cluster.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    cluster.kube.create(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": account, "namespace": ns},
        }
    )
    cluster.kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "autodevhub-secrets", "namespace": ns},
            "stringData": {"database-url": "x", "anthropic-api-key": "x", "api-keys": "x"},
        }
    )
    rules, needed = _least_privilege(cluster, "prod")
    subject = [{"kind": "ServiceAccount", "name": account, "namespace": ns}]

    def grant(keep: list[dict[str, Any]]) -> None:
        for kind, scope in (("Role", ns), ("ClusterRole", "")):
            name = f"{ns}-deployer"
            namespaced = kind == "Role"
            rbac = "rbac.authorization.k8s.io/v1"
            for obj_kind in (kind, f"{kind}Binding"):
                cluster.kube.delete(ObjectRef(rbac, obj_kind, scope, name))
            cluster.kube.create(
                {
                    "apiVersion": rbac,
                    "kind": kind,
                    "metadata": {"name": name, **({"namespace": scope} if scope else {})},
                    "rules": [r["rule"] for r in keep if r["namespaced"] == namespaced],
                }
            )
            cluster.kube.create(
                {
                    "apiVersion": rbac,
                    "kind": f"{kind}Binding",
                    "metadata": {"name": name, **({"namespace": scope} if scope else {})},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": kind,
                        "name": name,
                    },
                    "subjects": subject,
                }
            )

    grant(rules)
    kubeconfig = _service_account_kubeconfig(cluster, tmp_path / "sa.yaml", account)
    cluster.env["AUTODEVHUB__KUBERNETES__KUBECONFIG"] = str(kubeconfig)

    def doctor() -> dict[str, Any]:
        _, out, _ = cluster.cli("doctor", "--env", "prod", "-o", "json")
        return {f["check"]: f for f in json.loads(out)["environments"]["prod"]}

    found = cluster.wait("RBAC to apply", lambda: doctor()["Permissions"]["ok"] and doctor())
    assert f"{len(needed)} permissions allowed in namespace {ns}" in found["Permissions"]["detail"]
    assert found["Secret autodevhub-secrets"]["ok"]
    cluster.record_build("prod", "c-0000000000000151")
    code, _, err = cluster.deploy("prod", "--promote")
    assert code == 0, err
    cluster.record_build("prod", "c-0000000000000152")
    code, _, err = cluster.deploy("prod", "--promote")
    assert code == 0, err
    # Without the status subresource, promote and abort cannot work: doctor says so.
    grant([r for r in rules if r["rule"]["resources"] != ["rollouts/status"]])
    found = cluster.wait("RBAC to apply", lambda: (not doctor()["Permissions"]["ok"]) and doctor())
    detail = found["Permissions"]["detail"]
    assert detail == f"Not allowed in namespace {ns}: patch rollouts/status.argoproj.io.", detail
    for kind in ("ClusterRole", "ClusterRoleBinding"):
        cluster.kube.delete(ObjectRef("rbac.authorization.k8s.io/v1", kind, "", f"{ns}-deployer"))


def test_an_apply_into_a_namespace_that_does_not_exist_names_it(cluster: Cluster) -> None:
    from autodevhub_cli.core.errors import ApplyError

    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": cluster.ns},
        "data": {"a": "1"},
    }
    with pytest.raises(ApplyError) as caught:
        cluster.kube.apply(config_map)
    message = str(caught.value)
    assert (
        f"apply ConfigMap settings in {cluster.ns} failed: namespace '{cluster.ns}' does not exist"
        in message
    )
    assert "kubectl create namespace" in message
