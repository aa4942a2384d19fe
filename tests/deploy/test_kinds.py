"""The table of kinds (autodevhub_cli/core/kinds.py) on the real control plane (kwok pods): a
StatefulSet, a DaemonSet, a Job and a CronJob that a project's templates render are waited for,
restarted when their Secret changes (or said to read it on their next run), pruned when the
templates drop them and removed by `down`; and a kind added to the table in one row gets all of
that, where without the row it gets none.

kwok runs no process: these assert what the controllers and the API server do (pods replaced,
objects deleted), not what a container reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from autodevhub_cli.core import kinds
from autodevhub_cli.core.adapters.kube import ObjectRef
from autodevhub_cli.core.targets.access import required_permissions
from autodevhub_cli.core.targets.readiness import READY, Readiness, State
from tests.deploy.kube_cluster import Cluster

IMAGE = "registry.invalid/kinds:1@sha256:" + "1" * 64
SECRET = "autodevhub-secrets"

LABELS = {
    "app.kubernetes.io/managed-by": "autodevhub",
    "app.kubernetes.io/instance": "{{ env.app }}-{{ env.name }}",
}


def _meta(name: str) -> dict[str, Any]:
    return {"name": name, "namespace": "{{ env.namespace }}", "labels": LABELS}


def _pod(name: str, secret: bool = True, **spec: Any) -> dict[str, Any]:
    """A restricted pod on a kwok node, reading the environment's Secret."""
    container: dict[str, Any] = {
        "name": "main",
        "image": IMAGE,
        "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"cpu": "50m", "memory": "32Mi"},
        },
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if secret:
        ref = {"secretKeyRef": {"name": SECRET, "key": "anthropic-api-key"}}
        container["env"] = [{"name": "API_KEY", "valueFrom": ref}]
    return {
        "metadata": {"labels": {**LABELS, "kinds-test": name}},
        "spec": {
            **spec,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "nodeSelector": {"kubernetes.io/role": "agent"},
            "containers": [container],
        },
    }


def _template(*docs: dict[str, Any]) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


TEMPLATE = _template(
    {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta("kinds-db"),
        "spec": {
            "serviceName": "kinds-db",
            "replicas": 2,
            "selector": {"matchLabels": {"kinds-test": "kinds-db"}},
            "template": _pod("kinds-db"),
        },
    },
    {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _meta("kinds-agent"),
        "spec": {
            "selector": {"matchLabels": {"kinds-test": "kinds-agent"}},
            "template": _pod("kinds-agent"),
        },
    },
    {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta("kinds-seed"),
        "spec": {"backoffLimit": 0, "template": _pod("kinds-seed", restartPolicy="Never")},
    },
    {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _meta("kinds-report"),
        "spec": {
            "schedule": "0 3 * * *",
            "jobTemplate": {"spec": {"template": _pod("kinds-report", restartPolicy="Never")}},
        },
    },
)

CONTROLLER = _template(
    {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": _meta("kinds-legacy"),
        "spec": {
            "replicas": 2,
            "selector": {"kinds-test": "kinds-legacy"},
            "template": _pod("kinds-legacy", secret=False),
        },
    }
)


def _write(cluster: Cluster, name: str, text: str | None) -> None:
    path = cluster.root / "templates" / "kubernetes" / name
    if text is None:
        path.unlink()
    else:
        path.write_text(text)


def _get(cluster: Cluster, api_version: str, kind: str, name: str) -> dict[str, Any] | None:
    return cluster.kube.get(ObjectRef(api_version, kind, cluster.ns, name))


def _pods(cluster: Cluster, name: str) -> dict[str, str]:
    """name -> uid of the live pods of one of the test's workloads."""
    pods = cluster.kube.list_objects("v1", "Pod", cluster.ns, f"kinds-test={name}")
    return {
        p["metadata"]["name"]: p["metadata"]["uid"]
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
    }


OURS = [
    ("apps/v1", "StatefulSet", "kinds-db"),
    ("apps/v1", "DaemonSet", "kinds-agent"),
    ("batch/v1", "Job", "kinds-seed"),
    ("batch/v1", "CronJob", "kinds-report"),
]


def test_statefulset_daemonset_job_and_cronjob_through_deploy_rotate_prune_and_down(
    cluster: Cluster, tmp_path: Path
) -> None:
    _write(cluster, "kinds.yaml.j2", TEMPLATE)
    cluster.record_build("staging", "c-0000000000000201")
    code, out, err = cluster.deploy("staging")
    assert code == 0, err
    for kind, name in (
        ("StatefulSet", "kinds-db"),
        ("DaemonSet", "kinds-agent"),
        ("Job", "kinds-seed"),
    ):
        assert f"{kind} {name} in {cluster.ns} (ready)" in err, f"{kind} not waited for"
    db = _get(cluster, "apps/v1", "StatefulSet", "kinds-db")
    assert db is not None and db["status"].get("readyReplicas") == 2
    agent = _get(cluster, "apps/v1", "DaemonSet", "kinds-agent")
    assert agent is not None
    assert agent["status"]["numberAvailable"] == agent["status"]["desiredNumberScheduled"] >= 1
    seed = _get(cluster, "batch/v1", "Job", "kinds-seed")
    assert seed is not None and seed["status"].get("succeeded") == 1
    code, out, err = cluster.cli("status", "--env", "staging", "--output", "json")
    assert code == 0, err
    assert "StatefulSet/kinds-db" in out and "DaemonSet/kinds-agent" in out

    # A changed Secret replaces the pods of the StatefulSet and the DaemonSet; the Job's and
    # the CronJob's next pods read it when they start.
    before = {name: _pods(cluster, name) for name in ("kinds-db", "kinds-agent")}
    key = tmp_path / "key"
    key.write_text("sk-rotated-" + "6d" * 12 + "\n")
    code, out, err = cluster.cli(
        "secrets", "rotate", "--env", "staging", "anthropic-api-key", "--from-file", str(key)
    )
    assert code == 0, err
    said = out + err
    assert "StatefulSet kinds-db" in said and "DaemonSet kinds-agent" in said
    assert "CronJob/kinds-report: not restarted, its next run reads the new value" in said
    for name, pods in before.items():
        after = _pods(cluster, name)
        assert after and not set(after.values()) & set(pods.values()), f"{name} pods not replaced"

    # Dropped from the templates: pruned once the release serves.
    _write(cluster, "kinds.yaml.j2", None)
    code, out, err = cluster.diff("staging")
    assert code == 0, err
    for _, kind, name in OURS:
        assert f"live/{kind} {name} in {cluster.ns}" in out, f"diff does not show {kind} pruned"
    code, out, err = cluster.deploy("staging")
    assert code == 0, err
    for api_version, kind, name in OURS:
        assert _get(cluster, api_version, kind, name) is None, f"{kind} {name} not pruned"
        assert f"deleting {kind} {name} in {cluster.ns}" in err

    # Back, then `down` removes them with everything else.
    _write(cluster, "kinds.yaml.j2", TEMPLATE)
    assert cluster.deploy("staging")[0] == 0
    code, out, err = cluster.cli("down", "--env", "staging")
    assert code == 0, err
    for api_version, kind, name in OURS:
        assert _get(cluster, api_version, kind, name) is None, f"{kind} {name} not removed"


def _controller_ready(live: dict[str, Any], phase: str = "ready") -> Readiness:
    status = live.get("status") or {}
    want = (live.get("spec") or {}).get("replicas", 1)
    observed = status.get("observedGeneration", 0) >= live["metadata"].get("generation", 0)
    if observed and status.get("readyReplicas", 0) >= want:
        return READY
    return Readiness(State.WAITING, "replicas not ready")


def test_a_kind_added_in_one_row_is_waited_for_listed_pruned_and_removed(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kind the table does not know is applied last and left alone; one row in KINDS, and
    the same template's ReplicationController is ordered, waited for, listed by `status`,
    asked permissions for by `doctor`, pruned and removed by `down`."""
    _write(cluster, "legacy.yaml.j2", CONTROLLER)
    cluster.record_build("staging", "c-0000000000000211")
    code, out, err = cluster.deploy("staging")
    assert code == 0, err
    assert f"ReplicationController kinds-legacy in {cluster.ns} (ready)" not in err
    _write(cluster, "legacy.yaml.j2", None)
    assert cluster.deploy("staging")[0] == 0
    assert _get(cluster, "v1", "ReplicationController", "kinds-legacy") is not None, (
        "without a row, prune leaves a kind it does not know alone"
    )
    cluster.kube.delete(ObjectRef("v1", "ReplicationController", cluster.ns, "kinds-legacy"))

    row = kinds.Kind(
        api_version="v1",
        kind="ReplicationController",
        ready=_controller_ready,
        pod_template=kinds.POD_TEMPLATE,
        serves=True,
    )
    rows = list(kinds.KINDS)
    rows.insert(rows.index(kinds.kind_of("Deployment")), row)  # type: ignore[arg-type]
    monkeypatch.setattr(kinds, "KINDS", tuple(rows))

    _write(cluster, "legacy.yaml.j2", CONTROLLER)
    monkeypatch.setenv("AUTODEVHUB_NO_CACHE", "1")  # the table is not part of a cached render
    code, out, err = cluster.cli("render", "--env", "staging")
    assert code == 0, err
    order = [line for line in out.splitlines() if line.startswith("kind: ")]
    assert order.index("kind: ReplicationController") < order.index("kind: Deployment")
    code, out, err = cluster.deploy("staging")
    assert code == 0, err
    assert f"ReplicationController kinds-legacy in {cluster.ns} (ready)" in err
    legacy = _get(cluster, "v1", "ReplicationController", "kinds-legacy")
    assert legacy is not None and legacy["status"].get("readyReplicas") == 2
    code, out, err = cluster.cli("status", "--env", "staging", "--output", "json")
    assert code == 0 and "ReplicationController/kinds-legacy" in out, err
    needed = required_permissions(cluster.kube, [], cluster.ns)
    assert {p.verb for p in needed if p.resource == "replicationcontrollers"} >= {"list", "delete"}
    _write(cluster, "legacy.yaml.j2", None)
    code, out, err = cluster.deploy("staging")
    assert code == 0, err
    assert _get(cluster, "v1", "ReplicationController", "kinds-legacy") is None
    _write(cluster, "legacy.yaml.j2", CONTROLLER)
    assert cluster.deploy("staging")[0] == 0
    assert cluster.cli("down", "--env", "staging")[0] == 0
    assert _get(cluster, "v1", "ReplicationController", "kinds-legacy") is None
