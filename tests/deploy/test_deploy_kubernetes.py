"""`autodevhub deploy` on Kubernetes, against a real control plane.

kube-apiserver, etcd, kube-controller-manager, kube-scheduler, kwok nodes and the Argo Rollouts
controller (`scripts/local-cluster.sh`, built from Go modules; `AUTODEVHUB_K8S_KUBECONFIG`
points the suite at any other cluster). kwok makes pods Running and Ready but runs no process,
so the smoke checks hit the real backend and nginx (the image's config) on 127.0.0.1 in place of
the Ingress and the preview Service; images are never pulled, so a recorded build with any
digest deploys. What that proves: the objects, field ownership, controllers (Deployment, Job,
HPA, garbage collector, Argo Rollouts), RBAC and status timing of a real cluster. What it
cannot: that the images start, or that traffic reaches the pods (tests/deploy/test_real_node.py
shows those on the real node).

Why kwok nodes are enough here: each test asserts what the API server and the controllers hold
and what the CLI says, not what a container does: the objects applied, their pinned digests,
generations and UIDs; server-side apply's field managers and conflicts (the HPA tests,
`--force-conflicts`, diff); prune; Leases; the Secret `secrets set` writes and the template
annotation that restarts its users; exit codes and messages. The Deployment controller counts a
pod available from its Ready condition, which kwok sets at once and a kubelet once the readiness
probe passes: either way the rollout waits read the same status fields. The refusals (an
unpinned image, a secret on the command line, an unreferenced key, an apply into a missing
namespace) come before any pod exists. Real pods: an image pulled by digest passing its
readiness probe is test_the_backend_image_runs_on_the_real_node; the migrate Job migrating
PostgreSQL and the smoke checks reaching the pods through port-forward,
test_staging_runs_on_the_real_node.

Two tests use tests/kubefake, the API double, each saying why: the request order of a deploy
(seen only by the server), and log lines in a diagnosis (kwok's containers print none).
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.kube_cluster import Cluster
from tests.kubefake import controllers

pytestmark = [pytest.mark.k8s, pytest.mark.browser]


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


def test_an_image_not_pinned_by_digest_is_refused_before_anything_is_applied(
    cluster: Cluster,
) -> None:
    """staging sets kubernetes.require_image_digests: a mutable tag anywhere stops the deploy
    before any object is applied, naming the object, the container and the image."""
    cluster.record_build("staging", "c-00000000000000b1")
    code, out, err = cluster.deploy("staging", "--set", "backups.image=postgres:16-alpine")
    assert code == 2, out + err
    message = " ".join(err.split())
    assert "kubernetes.require_image_digests" in message
    assert "CronJob/backup container pg-dump: postgres:16-alpine" in message
    assert "name:tag@sha256:<digest>" in message and "Traceback" not in err
    for kind, name in (("CronJob", "backup"), ("Deployment", "backend"), ("Service", "frontend")):
        assert cluster.obj(kind, name, cluster.ns) is None, f"{kind} {name} was applied"
    # The same deploy with the pinned image of the environment file goes through.
    code, _, err = cluster.deploy("staging")
    assert code == 0, err
    cron = cluster.obj("CronJob", "backup", cluster.ns)
    assert cron is not None
    image = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert "@sha256:" in image


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
    """kwok makes the new release's pods crash-loop (scripts/cluster/crash-loop-stage.yaml).

    kwok is enough: its KWOK_CRASH_LOOP stage writes what a kubelet writes for a crashing
    container (CrashLoopBackOff, restartCount, a BackOff event) and keeps deleted pods
    terminating for 8 s; what this asserts follows from those API objects alone: which pod is
    blamed (a new one, not a terminating one), the event, the rollback. A real crash with its
    log lines is the `exits` case of
    test_a_broken_release_on_the_real_node_is_diagnosed_and_rolled_back."""
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
    """On the double: kwok's simulated containers print no log lines (real ones are read in
    test_a_broken_release_on_the_real_node_is_diagnosed_and_rolled_back)."""
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
            # A pod of the new ReplicaSet (the stand-in controller below makes it).
            labels = {
                **obj["spec"]["selector"]["matchLabels"],
                "pod-template-hash": controllers.pod_hash(obj["spec"]["template"]),
            }
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
            # The controller has seen the new spec; its pods never become ready.
            controllers.settle(fake.cluster, event, lambda _obj: False)
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


# kwok is enough: this asserts the Secret, the restart (a new generation, the checksum
# annotation) and that no output leaks the value; new pods reading the new file are
# test_secrets_rotate_restarts_the_real_pods_and_they_read_the_new_value.
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
