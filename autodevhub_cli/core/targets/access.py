"""What a deploy asks of the Kubernetes API, derived from the release's own manifests.

`doctor` checks these with SelfSubjectAccessReviews, and a Role granting exactly these lets a
deploy run: the kinds rendered (get, apply), the kinds prune looks at (list, delete), what the
wait reads (pods, their logs, events, ReplicaSets), the Lease lock, the release history (Secrets
in the namespace), blue-green's status patches, and the Secrets the workloads reference.
Measured on a real API server with RBAC: a deploy under a
Role with exactly these succeeds (tests/deploy/test_kube_rbac.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from autodevhub_cli.core.adapters.kube import Forbidden, Kube, ObjectRef
from autodevhub_cli.core.kinds import pod_kinds, prunable_kinds


@dataclass(kw_only=True, frozen=True)
class Permission:
    """One verb on one resource, in a namespace ('' when cluster-scoped), maybe one object."""

    group: str
    resource: str
    verb: str
    namespace: str
    name: str = ""

    def __str__(self) -> str:
        what = f"{self.verb} {self.resource}" + (f".{self.group}" if self.group else "")
        return what + (f" {self.name}" if self.name else "")

    def review(self) -> dict[str, Any]:
        """The SelfSubjectAccessReview that asks the API server about it."""
        base, _, sub = self.resource.partition("/")
        attributes = {
            "verb": self.verb,
            "group": self.group,
            "resource": base,
            "subresource": sub,
            "namespace": self.namespace,
            "name": self.name,
        }
        return {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            # A real API server refuses any metadata on a review ("must be empty").
            "spec": {"resourceAttributes": {k: v for k, v in attributes.items() if v}},
        }


def required_permissions(
    kube: Kube,
    docs: list[dict[str, Any]],
    namespace: str,
    secrets: Iterable[str] = (),
) -> list[Permission]:
    """Every permission a deploy of `docs` into `namespace` uses, in a stable order."""
    wanted: dict[Permission, None] = {}

    def add(api_version: str, kind: str, verbs: str, sub: str = "", name: str = "") -> None:
        if not kube.has(api_version, kind):
            return  # a kind the cluster does not serve: doctor's CRD check names it
        resource = kube.resource(api_version, kind)
        group = api_version.rpartition("/")[0]
        scope = namespace if resource.namespaced else ""
        plural = str(resource.name) + (f"/{sub}" if sub else "")
        for verb in verbs.split():
            wanted[
                Permission(group=group, resource=plural, verb=verb, namespace=scope, name=name)
            ] = None

    # The lock: the namespace must exist, and the Lease is created, renewed and deleted.
    add("v1", "Namespace", "get", name=namespace)
    add("coordination.k8s.io/v1", "Lease", "get create update delete")
    # The release history: Secrets of type autodevhub.io/release.v1 in the namespace (listed by
    # label, created, replaced at a resourceVersion, and deleted beyond releases.keep).
    add("v1", "Secret", "get list create update delete")
    kinds = {(d["apiVersion"], d["kind"]) for d in docs}
    # Server-side apply is a PATCH, and one that creates the object needs `create` too.
    for doc in docs:
        if doc["kind"] != "Namespace":
            add(doc["apiVersion"], doc["kind"], "get create patch")
            continue
        name = doc["metadata"]["name"]
        add("v1", "Namespace", "get patch", name=name)
        try:
            exists = kube.get(ObjectRef("v1", "Namespace", "", name)) is not None
        except Forbidden:
            exists = False  # cannot tell: a deploy would have to be able to create it
        if not exists:
            add("v1", "Namespace", "create")  # RBAC cannot limit `create` to one name
    # Prune and `down` (every kind the table may delete: read one by one, found by label,
    # deleted), and `secrets set` (the workloads reading a Secret, listed, then restarted).
    for api_version, kind in prunable_kinds():
        add(api_version, kind, "get list delete")
    for row in pod_kinds():
        add(row.api_version, row.kind, "list patch")
    # The wait and its diagnosis.
    add("v1", "Pod", "list")
    add("v1", "Pod", "get", sub="log")
    add("v1", "Event", "list")
    if ("apps/v1", "Deployment") in kinds:
        add("apps/v1", "ReplicaSet", "list")
    if ("argoproj.io/v1alpha1", "Rollout") in kinds:
        add("argoproj.io/v1alpha1", "Rollout", "patch", sub="status")  # promote and abort
    for secret in secrets:
        add("v1", "Secret", "get", name=secret)
    return list(wanted)
