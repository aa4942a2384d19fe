"""Blue-green on the real control plane: Argo Rollouts owns the Services' selectors; promote,
abort, rollback, restart through `spec.restartAt`, smoke checks through port-forward.

Why kwok nodes are enough here: what these tests assert is written by the API server and the
Argo Rollouts controller, or said by the CLI: the Rollout's phase, currentPodHash,
blueGreen.activeSelector and restartedAt; the `rollouts-pod-template-hash` Argo writes into the
active and preview Services' selectors, and the field manager that owns it; the release records;
exit codes and messages. Argo counts a version up from its ReplicaSet's available pods, which
follows the pods' Ready condition: kwok sets it at once, a kubelet once the readiness probe
passes. The smoke checks reach the real backend and nginx on 127.0.0.1, not the pods: a failed
check is what that backend answers, and the abort it triggers is Argo's work on API objects.
That traffic to the active Service follows the switch, none of it answered by the preview before
the promotion and none failing, and that a release failing its check is aborted while real pods
serve, need real pods and kube-proxy:
test_blue_green_on_the_real_node_keeps_every_request_on_the_active_version.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.deploy.kube_cluster import Cluster, active_hash
from tests.helpers import REPO

pytestmark = [pytest.mark.k8s, pytest.mark.browser]


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
    assert active_hash(cluster) == stable
    preview = cluster.obj("Service", "backend-preview")
    assert preview is not None
    assert preview["spec"]["selector"]["rollouts-pod-template-hash"] != stable
    # status reads what runs: the Rollout says its preview waits for promotion.
    code, out, err = cluster.cli("status", "--env", "prod", "-o", "json")
    assert code == 0, err
    waiting = f"{preview['spec']['selector']['rollouts-pod-template-hash']} waits for promotion"
    assert [p for p in json.loads(out)["previews"] if waiting in p], out
    code, out, err = cluster.cli("status", "--env", "prod")
    assert code == 0 and waiting in out, out
    code, out, err = cluster.cli("promote", "--env", "prod", "--timeout", "60")
    assert code == 0, err
    rollout = cluster.obj("Rollout", "backend")
    assert rollout is not None and rollout["status"]["phase"] == "Healthy"
    assert rollout["status"]["blueGreen"]["activeSelector"] == rollout["status"]["currentPodHash"]
    assert active_hash(cluster) == rollout["status"]["currentPodHash"]
    assert cluster.releases("prod")[-1]["status"] == "deployed"
    code, out, err = cluster.cli("status", "--env", "prod", "-o", "json")
    assert code == 0 and json.loads(out)["previews"] == [], out


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
        assert active_hash(cluster) == current, "the active Service selects the new version"
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
    stable = active_hash(cluster)
    cluster.record_build("prod", "c-00000000000000f2")
    code, _, err = cluster.deploy(
        "prod",
        "--promote",
        "--set",
        "smoke.checks=[{name: preview api, component: backend, path: /api/nope}]",
        "--set",
        "smoke.timeout_seconds=2",
    )
    assert code == 3, err
    assert "preview api" in err and "Rolled back" in err
    assert active_hash(cluster) == stable
    assert cluster.releases("prod")[-1]["status"] == "failed"
    rollout = cluster.obj("Rollout", "backend")
    assert rollout is not None
    assert rollout["status"]["currentPodHash"] == stable
    assert "c-00000000000000f1" in json.dumps(rollout["spec"]["template"])


def test_secrets_rotate_restarts_the_active_pods_of_a_rollout(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A changed pod template would park a new blue-green revision as the preview while the
    active pods keep the old value: a Rollout restarts through `spec.restartAt`.

    kwok is enough: this asserts which pods Argo replaced (their names) and the Rollout's status,
    not what the new pods read; new pods reading the rotated file are
    test_secrets_rotate_restarts_the_real_pods_and_they_read_the_new_value (staging's
    Deployment; the Rollout's pod template mounts the Secret the same way)."""
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
    # The worker uses the same Secret, so its Deployment restarts too.
    assert "restarted Deployment worker" in out and "Rollout backend in" in out
    assert "smoke checks passed" in out
    after = cluster.obj("Rollout", "backend")
    assert after is not None
    assert after["status"]["currentPodHash"] == stable, "no new revision"
    assert after["status"]["phase"] == "Healthy"
    assert after["status"]["restartedAt"] == after["spec"]["restartAt"]
    live = [p for p in cluster.objs("Pod", selector) if not p["metadata"].get("deletionTimestamp")]
    assert len(live) == 2 and not {p["metadata"]["name"] for p in live} & old_pods
    assert active_hash(cluster) == stable


def test_smoke_checks_through_port_forward(
    cluster: Cluster, app: dict[str, str], tmp_path: Path
) -> None:
    """The cluster is real; `kubectl port-forward` is a stand-in that forwards to the local
    backend and nginx (kwok pods run no process): this proves the commands, the Services they
    name (the preview's before promotion) and the flow, not that traffic reaches a pod. The
    real `kubectl port-forward` to real pods is in test_the_backend_image_runs_on_the_real_node,
    test_staging_runs_on_the_real_node (smoke.port_forward) and, to the preview, in
    test_blue_green_on_the_real_node_keeps_every_request_on_the_active_version."""
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
    for name in ("URLS__FRONTEND", "URLS__BACKEND", "PREVIEW_URLS__BACKEND"):
        del cluster.env[f"AUTODEVHUB__SMOKE__{name}"]
    cluster.record_build("prod", "c-0000000000000141")
    code, _, err = cluster.deploy("prod", "--promote")
    assert code == 0, err
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    services = [c[1] for c in calls]
    assert "svc/frontend" in services and "svc/backend" in services
    first = next(c for c in calls if c[1] == "svc/frontend")
    assert first[:3] == ["port-forward", "svc/frontend", ":8080"]
    assert first[first.index("-n") + 1] == cluster.ns
    assert "--kubeconfig" in first
    cluster.record_build("prod", "c-0000000000000142")
    code, _, err = cluster.deploy("prod")
    assert code == 0, err
    assert "svc/backend-preview" in log.read_text(), "the preview is checked through its Service"
