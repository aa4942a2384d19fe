"""Stand-ins for the controllers a real cluster runs: Deployments, Jobs and Argo Rollouts.

`auto_ready` registers `settle` as a write hook: every spec change is reported back as a finished
rollout at the object's generation, the way `kubectl rollout status` expects to find it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from .cluster import Cluster, WriteEvent, WriteOptions, now

CONTROLLER = "kube-controller-manager"
PATCH_MERGE = "application/merge-patch+json"
Readiness = Callable[[dict[str, Any]], bool] | None


def pod_hash(template: Any) -> str:
    """A stable pod-template hash like the `pod-template-hash` label."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return digest[:10]


def _condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
    stamp = now()
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
    }


def deployment_status(obj: dict[str, Any], ready: bool = True) -> dict[str, Any]:
    """Deployment (or ReplicaSet) status at the current generation.

    Ready: fully rolled out. Not ready: pods updated but never available, as with a crash loop;
    `progress_deadline_exceeded` turns that into the condition `kubectl rollout status` fails on.
    """
    replicas = (obj.get("spec") or {}).get("replicas", 1)
    rs_name = f"{obj['metadata']['name']}-{pod_hash((obj.get('spec') or {}).get('template'))}"
    status: dict[str, Any] = {
        "observedGeneration": obj["metadata"].get("generation", 1),
        "replicas": replicas,
        "updatedReplicas": replicas,
    }
    if ready:
        status.update(readyReplicas=replicas, availableReplicas=replicas)
        available = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        progressing = (
            "True",
            "NewReplicaSetAvailable",
            f'ReplicaSet "{rs_name}" has successfully progressed.',
        )
    else:
        status["unavailableReplicas"] = replicas
        available = (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
        progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
    status["conditions"] = [
        _condition("Available", *available),
        _condition("Progressing", *progressing),
    ]
    return status


def progress_deadline_exceeded(obj: dict[str, Any]) -> dict[str, Any]:
    """A Deployment whose rollout timed out: `Progressing=False`, reason ProgressDeadlineExceeded."""
    status = deployment_status(obj, ready=False)
    rs_name = status["conditions"][1]["message"].split('"')[1]
    status["conditions"][1] = _condition(
        "Progressing",
        "False",
        "ProgressDeadlineExceeded",
        f'ReplicaSet "{rs_name}" has timed out progressing.',
    )
    return status


def job_status(obj: dict[str, Any], ready: bool = True) -> dict[str, Any]:
    """A Job whose pods all succeeded, or (not ready) one whose pod keeps failing."""
    completions = (obj.get("spec") or {}).get("completions", 1)
    stamp = now()
    if not ready:
        return {"startTime": stamp, "active": 1, "ready": 0, "failed": 1, "terminating": 0}
    return {
        "startTime": stamp,
        "completionTime": stamp,
        "succeeded": completions,
        "active": 0,
        "ready": 0,
        "terminating": 0,
        "conditions": [
            {
                "type": "SuccessCriteriaMet",
                "status": "True",
                "lastProbeTime": stamp,
                "lastTransitionTime": stamp,
            },
            {
                "type": "Complete",
                "status": "True",
                "lastProbeTime": stamp,
                "lastTransitionTime": stamp,
            },
        ],
    }


def rollout_status(obj: dict[str, Any], ready: bool = True) -> dict[str, Any]:
    """Argo Rollouts status for the object's current template, pausing blue-green as Argo does.

    A new template becomes the preview; with `autoPromotionEnabled: false` the rollout pauses
    (`BlueGreenPause`) until someone clears `status.pauseConditions` (what `kubectl argo rollouts
    promote` does), then the new hash becomes active. The first revision is promoted at once.
    `status.abort` (`kubectl argo rollouts abort`) keeps the stable hash active: `Degraded`.
    Not ready: the new pods never become available, so nothing is paused or promoted.
    """
    spec = obj.get("spec") or {}
    status = dict(obj.get("status") or {})
    replicas = spec.get("replicas", 1)
    current = pod_hash(spec.get("template"))
    blue_green = (spec.get("strategy") or {}).get("blueGreen")
    first = not status.get("stableRS")
    if status.pop("promoteFull", False):  # `kubectl argo rollouts promote --full`
        status.pop("pauseConditions", None)
    if status.get("currentPodHash") != current:
        status.pop("abort", None)
        if ready and not first and blue_green and blue_green.get("autoPromotionEnabled") is False:
            status["pauseConditions"] = [{"reason": "BlueGreenPause", "startTime": now()}]
            status["controllerPause"] = True
    status.update(
        observedGeneration=str(obj["metadata"].get("generation", 1)),
        currentPodHash=current,
        replicas=replicas,
        updatedReplicas=replicas,
        readyReplicas=replicas if ready else 0,
        availableReplicas=replicas if ready else 0,
        selector=",".join(
            f"{k}={v}" for k, v in ((spec.get("selector") or {}).get("matchLabels") or {}).items()
        ),
    )
    aborted = bool(status.get("abort"))
    paused = not aborted and (bool(status.get("pauseConditions")) or bool(spec.get("paused")))
    if not paused:
        status.pop("pauseConditions", None)
        status.pop("controllerPause", None)
    promote = ready and not paused and not aborted
    if promote:
        status["stableRS"] = current
    if blue_green is not None:
        bg = dict(status.get("blueGreen") or {})
        bg["previewSelector"] = current
        if promote:
            bg["activeSelector"] = current
        elif aborted:
            bg["activeSelector"] = status.get("stableRS")
        status["blueGreen"] = bg
    elif promote:
        canary = (spec.get("strategy") or {}).get("canary") or {}
        status["currentStepIndex"] = len(canary.get("steps") or [])
        status["canary"] = {}
    if aborted:
        phase, message = "Degraded", "RolloutAborted: Rollout aborted update"
        progressing = ("False", "RolloutAborted", "Rollout aborted update")
    elif paused:
        phase = "Paused"
        message = "BlueGreenPause" if blue_green is not None else "manually paused"
        progressing = ("True", "RolloutPaused", "Rollout is paused")
    elif not ready:
        phase, message = "Progressing", "updated replicas are still becoming available"
        progressing = ("True", "ReplicaSetUpdated", "Rollout is progressing")
    else:
        phase, message = "Healthy", ""
        progressing = ("True", "NewReplicaSetAvailable", "Rollout has successfully progressed")
    status["phase"] = phase
    if message:
        status["message"] = message
    else:
        status.pop("message", None)
    available = "True" if ready else "False"
    status["conditions"] = [
        _condition("Available", available, "AvailableReason", "Rollout has minimum availability"),
        _condition("Progressing", *progressing),
        _condition("Paused", "True" if paused else "False", "RolloutPaused", "Rollout is paused"),
        _condition("Healthy", "True" if phase == "Healthy" else "False", "RolloutHealthy", ""),
    ]
    return status


def _point_services(cluster: Cluster, obj: dict[str, Any], status: dict[str, Any]) -> None:
    """Argo rewrites the active/preview Services' selectors to the pod-template hash."""
    bg = ((obj.get("spec") or {}).get("strategy") or {}).get("blueGreen") or {}
    svc_type = cluster.type_for_kind("v1", "Service")
    namespace = obj["metadata"]["namespace"]
    for field, selected in (
        ("activeService", (status.get("blueGreen") or {}).get("activeSelector")),
        ("previewService", (status.get("blueGreen") or {}).get("previewSelector")),
    ):
        key = cluster.key(svc_type, namespace, bg.get(field) or "")
        service = cluster.objects.get(key)
        if service is None or not selected:
            continue
        selector = (service.get("spec") or {}).get("selector") or {}
        if selector.get("rollouts-pod-template-hash") != selected:
            patch = {"spec": {"selector": {**selector, "rollouts-pod-template-hash": selected}}}
            cluster.patch(
                svc_type,
                namespace,
                bg[field],
                PATCH_MERGE,
                patch,
                WriteOptions(manager="rollouts-controller"),
            )


def settle(cluster: Cluster, event: WriteEvent, ready: Readiness = None) -> None:
    """Write hook: bring Deployments, ReplicaSets, Jobs and Rollouts to their settled state.

    `ready(obj)` decides per object whether it becomes ready (default: always). Deployments react
    to a new generation and Jobs to their first write, so a status a test sets by hand stays until
    the next spec change; Rollouts also react to status writes (promote and abort patch status).
    """
    if event.type == "DELETED":
        return
    rt = event.resource
    meta = event.object["metadata"]
    namespace, name = meta.get("namespace", ""), meta["name"]
    key = cluster.key(rt, namespace, name)
    if key not in cluster.objects:
        return
    if rt.kind == "Deployment" and rt.group == "apps":
        _sync_replica_sets(cluster, cluster.get(rt, namespace, name))
    obj = cluster.get(rt, namespace, name)  # hooks nest: re-read
    is_ready = ready(obj) if ready is not None else True
    current = obj.get("status") or {}
    desired: dict[str, Any] | None = None
    generation = obj["metadata"].get("generation")
    if event.subresource != "status" and rt.group in ("apps", "batch"):
        if (
            rt.kind in ("Deployment", "ReplicaSet")
            and current.get("observedGeneration") != generation
        ):
            desired = deployment_status(obj, is_ready)
        elif rt.kind == "Job" and not current.get("startTime"):
            desired = job_status(obj, is_ready)
    elif rt.kind == "Rollout" and rt.group == "argoproj.io":
        desired = rollout_status(obj, is_ready)
    if desired is None or _without_times(desired) == _without_times(current):
        return
    manager = "rollouts-controller" if rt.kind == "Rollout" else CONTROLLER
    stored = cluster.set_status(rt, namespace, name, desired, manager)
    if rt.kind == "Rollout":
        _point_services(cluster, stored, desired)


REVISION = "deployment.kubernetes.io/revision"


def _sync_replica_sets(cluster: Cluster, obj: dict[str, Any]) -> None:
    """The Deployment controller's bookkeeping: one ReplicaSet per template, numbered revisions.

    The current template's ReplicaSet gets all replicas and the highest revision (an old template
    coming back, as in `kubectl rollout undo`, is renumbered); older ones are scaled to zero.
    """
    meta, spec = obj["metadata"], obj.get("spec") or {}
    rs_type = cluster.type_for_kind("apps/v1", "ReplicaSet")
    namespace, template = meta["namespace"], spec.get("template") or {}
    current = pod_hash(template)
    owned = [
        rs
        for rs in cluster.list_objects(rs_type, namespace)
        if any(ref.get("uid") == meta["uid"] for ref in rs["metadata"].get("ownerReferences") or [])
    ]
    revisions = [int((rs["metadata"].get("annotations") or {}).get(REVISION, 0)) for rs in owned]
    mine = next((rs for rs in owned if rs["metadata"]["name"] == f"{meta['name']}-{current}"), None)
    top = max(revisions, default=0)
    mine_revision = int((mine["metadata"].get("annotations") or {}).get(REVISION, 0)) if mine else 0
    revision = mine_revision if mine and mine_revision == top else top + 1
    replicas = spec.get("replicas", 1)
    labels = {**(template.get("metadata") or {}).get("labels", {}), "pod-template-hash": current}
    desired_template = {
        **template,
        "metadata": {**(template.get("metadata") or {}), "labels": labels},
    }
    manifest: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{meta['name']}-{current}",
            "namespace": namespace,
            "labels": labels,
            "annotations": {REVISION: str(revision)},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "replicas": replicas,
            "selector": {
                "matchLabels": {
                    **(spec.get("selector") or {}).get("matchLabels", {}),
                    "pod-template-hash": current,
                }
            },
            "template": desired_template,
        },
    }
    opts = WriteOptions(manager=CONTROLLER)
    if mine is None:
        cluster.create(rs_type, namespace, manifest, opts)
    elif mine_revision != revision or (mine.get("spec") or {}).get("replicas") != replicas:
        patch = {
            "metadata": {"annotations": {REVISION: str(revision)}},
            "spec": {"replicas": replicas},
        }
        cluster.patch(rs_type, namespace, mine["metadata"]["name"], PATCH_MERGE, patch, opts)
    for rs in owned:
        if rs["metadata"]["name"] != manifest["metadata"]["name"] and rs["spec"].get("replicas"):
            cluster.patch(
                rs_type,
                namespace,
                rs["metadata"]["name"],
                PATCH_MERGE,
                {"spec": {"replicas": 0}},
                opts,
            )
    if (meta.get("annotations") or {}).get(REVISION) != str(revision):
        annotate = {"metadata": {"annotations": {REVISION: str(revision)}}}
        deployment_type = cluster.type_for_kind("apps/v1", "Deployment")
        cluster.patch(deployment_type, namespace, meta["name"], PATCH_MERGE, annotate, opts)


def _without_times(status: dict[str, Any]) -> Any:
    text = json.dumps(status, sort_keys=True)
    data = json.loads(text)
    for cond in data.get("conditions") or []:
        cond.pop("lastUpdateTime", None)
        cond.pop("lastTransitionTime", None)
    for cond in data.get("pauseConditions") or []:
        cond.pop("startTime", None)
    return data
