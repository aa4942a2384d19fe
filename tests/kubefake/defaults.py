"""Defaulting the real API server does on every write, so dry-run diffs look like a cluster's.

Only the defaults deploy code meets: workload and pod-template fields, Service networking fields,
and the phases of namespaces and new pods. Nobody owns defaulted fields in `managedFields`.
"""

from __future__ import annotations

import itertools
from typing import Any

from .resources import ResourceType

_CLUSTER_IPS = (f"10.96.{n // 250}.{n % 250 + 2}" for n in itertools.count(1))


def _container(container: dict[str, Any]) -> None:
    image = str(container.get("image", ""))
    latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def pod_spec(spec: dict[str, Any]) -> None:
    """Pod-level and container-level defaults."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for field in ("containers", "initContainers"):
        for container in spec.get(field) or []:
            if isinstance(container, dict):
                _container(container)


def _template(spec: dict[str, Any]) -> None:
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        pod_spec(template["spec"])


def apply_defaults(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Fill in what the server would; `old` keeps allocated values such as a clusterIP."""
    spec = obj.get("spec")
    builtin = not rt.from_crd
    if rt.kind == "Namespace":
        obj["status"] = {"phase": "Active"}
    if rt.kind == "Pod" and old is None:
        obj.setdefault("status", {"phase": "Pending"})
    if not isinstance(spec, dict):
        return
    if rt.kind in ("Deployment", "ReplicaSet", "Rollout"):
        spec.setdefault("replicas", 1)
    if builtin and rt.kind == "Deployment":
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy.setdefault("type", "RollingUpdate")
            strategy.setdefault("rollingUpdate", {"maxUnavailable": "25%", "maxSurge": "25%"})
    if builtin and rt.kind in ("Deployment", "ReplicaSet", "Job"):
        _template(spec)
    if builtin and rt.kind == "Job":
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)
    if builtin and rt.kind == "Pod":
        pod_spec(spec)
    if builtin and rt.kind == "Service":
        _service(spec, ((old or {}).get("spec") or {}))


def _service(spec: dict[str, Any], old_spec: dict[str, Any]) -> None:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        ip = spec.get("clusterIP") or old_spec.get("clusterIP") or next(_CLUSTER_IPS)
        spec["clusterIP"] = ip
        spec.setdefault("clusterIPs", [ip] if ip != "None" else ["None"])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
