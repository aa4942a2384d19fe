"""The resource types the fake serves, and the discovery documents that describe them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SERVER_VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-kubefake",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclass(frozen=True)
class ResourceType:
    """One served resource: where it lives in the URL space and what it is called."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool = True
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()
    from_crd: bool = False

    @property
    def api_version(self) -> str:
        """`v1` for the core group, `group/version` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def dotted_group(self) -> str:
        """`.apps` for apps, empty for core; used in error messages."""
        return f".{self.group}" if self.group else ""

    @property
    def group_resource(self) -> str:
        """`deployments.apps` or `pods`, as error messages name a resource."""
        return f"{self.plural}{self.dotted_group}"

    @property
    def has_status(self) -> bool:
        """True when `status` is only writable through the `/status` subresource."""
        return "status" in self.subresources


def _rt(
    group: str,
    version: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    sub: tuple[str, ...] = (),
    short: tuple[str, ...] = (),
    verbs: tuple[str, ...] = ALL_VERBS,
) -> ResourceType:
    return ResourceType(
        group, version, plural, kind.lower(), kind, namespaced, verbs, sub, short, False
    )


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _rt("", "v1", "namespaces", "Namespace", namespaced=False, sub=("status",), short=("ns",)),
    _rt("", "v1", "services", "Service", sub=("status",), short=("svc",)),
    _rt("", "v1", "secrets", "Secret"),
    _rt("", "v1", "configmaps", "ConfigMap", short=("cm",)),
    _rt(
        "", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", sub=("status",), short=("pvc",)
    ),
    _rt("", "v1", "pods", "Pod", sub=("status", "log"), short=("po",)),
    _rt("", "v1", "events", "Event", short=("ev",)),
    _rt("", "v1", "serviceaccounts", "ServiceAccount", short=("sa",)),
    _rt("apps", "v1", "deployments", "Deployment", sub=("status", "scale"), short=("deploy",)),
    _rt("apps", "v1", "replicasets", "ReplicaSet", sub=("status", "scale"), short=("rs",)),
    _rt("batch", "v1", "jobs", "Job", sub=("status",)),
    _rt("batch", "v1", "cronjobs", "CronJob", sub=("status",), short=("cj",)),
    _rt(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        sub=("status",),
        short=("pdb",),
    ),
    _rt(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        sub=("status",),
        short=("hpa",),
    ),
    _rt("networking.k8s.io", "v1", "ingresses", "Ingress", sub=("status",), short=("ing",)),
    _rt("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short=("netpol",)),
    _rt("coordination.k8s.io", "v1", "leases", "Lease"),
    _rt(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        namespaced=False,
        verbs=("create",),
    ),
    _rt(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        sub=("status",),
        short=("crd", "crds"),
    ),
)

# Status is reset on create and kept on update for these, like the real registry strategies.
SUBRESOURCE_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "log": ["get"],
}


def crd_manifest(
    group: str,
    plural: str,
    kind: str,
    version: str,
    *,
    short: tuple[str, ...] = (),
    status: bool = True,
    scale: bool = False,
    namespaced: bool = True,
) -> dict[str, Any]:
    """A minimal CustomResourceDefinition that accepts any fields."""
    served: dict[str, Any] = {
        "name": version,
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        },
    }
    if status:
        served["subresources"] = {"status": {}}
    if scale:
        served.setdefault("subresources", {})["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.HPAReplicas",
            "labelSelectorPath": ".status.selector",
        }
    names: dict[str, Any] = {
        "plural": plural,
        "singular": kind.lower(),
        "kind": kind,
        "listKind": f"{kind}List",
    }
    if short:
        names["shortNames"] = list(short)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": names,
            "scope": "Namespaced" if namespaced else "Cluster",
            "versions": [served],
        },
    }


def default_crds() -> list[dict[str, Any]]:
    """The CRDs a cluster with Argo Rollouts and the Prometheus operator has installed."""
    return [
        crd_manifest("argoproj.io", "rollouts", "Rollout", "v1alpha1", short=("ro",), scale=True),
        crd_manifest("argoproj.io", "analysistemplates", "AnalysisTemplate", "v1alpha1"),
        crd_manifest(
            "monitoring.coreos.com", "servicemonitors", "ServiceMonitor", "v1", status=False
        ),
        crd_manifest(
            "monitoring.coreos.com", "prometheusrules", "PrometheusRule", "v1", status=False
        ),
    ]


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The resource types a stored CRD makes servable (one per served version)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    found = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        declared = version.get("subresources") or {}
        sub = tuple(name for name in ("status", "scale") if name in declared)
        found.append(
            ResourceType(
                group=spec.get("group", ""),
                version=version["name"],
                plural=names.get("plural", ""),
                singular=names.get("singular") or names.get("kind", "").lower(),
                kind=names.get("kind", ""),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                subresources=sub,
                short_names=tuple(names.get("shortNames") or ()),
                from_crd=True,
            )
        )
    return found


def group_list(types: list[ResourceType]) -> dict[str, Any]:
    """The `/apis` APIGroupList."""
    groups: dict[str, list[str]] = {}
    for rt in types:
        if rt.group and rt.version not in groups.setdefault(rt.group, []):
            groups[rt.group].append(rt.version)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [api_group(name, versions) for name, versions in groups.items()],
    }


def api_group(name: str, versions: list[str]) -> dict[str, Any]:
    """One APIGroup; the first version listed is the preferred one."""
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": entries,
        "preferredVersion": dict(entries[0]),
    }


def resource_list(group_version: str, types: list[ResourceType]) -> dict[str, Any]:
    """The APIResourceList for one group/version, with subresources as `plural/sub`."""
    resources: list[dict[str, Any]] = []
    for rt in types:
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        resources.append(entry)
        for sub in rt.subresources:
            entry = {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": SUBRESOURCE_VERBS[sub],
            }
            if sub == "scale":
                entry.update(group="autoscaling", version="v1", kind="Scale")
            resources.append(entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }
