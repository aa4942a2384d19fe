"""The one table of the Kubernetes kinds autodevhub renders, applies, waits for, prunes, removes,
restarts and asks permissions for.

Render order, the deploy's wait and readiness, prune and `down`, the tasks' prerequisites,
`status`, the Secret users that `secrets set` restarts, and doctor's RBAC check all read
`KINDS`; a new kind is one row here (a test adds one and follows it through). The module imports
only the standard library and the readiness rules (no SDK): `render` loads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autodevhub_cli.core.targets.readiness import (
    Readiness,
    daemon_set_ready,
    deployment_ready,
    job_ready,
    rollout_ready,
    stateful_set_ready,
)

# How a changed Secret reaches the running pods of a workload (`secrets set`, `rotate`):
TEMPLATE = "template"  # an annotation on the pod template: the controller replaces the pods
RESTART_AT = "restartAt"  # Argo Rollouts' spec.restartAt: the same revision, its pods replaced
NEXT_RUN = "next run"  # a Job's or CronJob's pods read the Secret when they start: nothing to do

POD_TEMPLATE = ("spec", "template")


@dataclass(frozen=True, kw_only=True)
class Kind:
    """What autodevhub knows about one kind."""

    api_version: str
    kind: str
    # The deploy waits until an object of it is ready, by this rule (None: ready once applied).
    ready: Callable[[dict[str, Any], str], Readiness] | None = None
    # Where its pod template is, for a kind whose objects run pods.
    pod_template: tuple[str, ...] | None = None
    # How a changed Secret reaches its pods (TEMPLATE, RESTART_AT, NEXT_RUN), for pod kinds.
    restart: str | None = None
    # Its objects run the environment's long-lived pods: `status` lists them.
    serves: bool = False
    # What reports its status (observedGeneration): until that has seen an applied spec, the
    # object's current version and its pods are not known.
    controller: str | None = None
    # Deleted when a release no longer renders it, and by `down` (a Namespace never is).
    prunable: bool = True
    # Found by its labels for `down` and for an environment whose records were lost. Secrets
    # are not: the release history and the values `secrets set` wrote carry the environment's
    # labels too; a Secret the templates render is removed through the release that has it.
    by_label: bool = True

    @property
    def ref(self) -> tuple[str, str]:
        """(apiVersion, kind)."""
        return (self.api_version, self.kind)


# In apply order: what others depend on comes first (Helm and kubectl order objects the same way).
KINDS: tuple[Kind, ...] = (
    Kind(api_version="v1", kind="Namespace", prunable=False, by_label=False),
    Kind(api_version="networking.k8s.io/v1", kind="NetworkPolicy"),
    Kind(api_version="v1", kind="ResourceQuota"),
    Kind(api_version="v1", kind="LimitRange"),
    Kind(api_version="v1", kind="ServiceAccount"),
    Kind(api_version="v1", kind="Secret", by_label=False),
    Kind(api_version="v1", kind="ConfigMap"),
    Kind(api_version="v1", kind="PersistentVolumeClaim"),
    Kind(api_version="rbac.authorization.k8s.io/v1", kind="Role"),
    Kind(api_version="rbac.authorization.k8s.io/v1", kind="RoleBinding"),
    Kind(api_version="v1", kind="Service"),
    Kind(
        api_version="batch/v1",
        kind="Job",
        ready=job_ready,
        pod_template=POD_TEMPLATE,
        restart=NEXT_RUN,
    ),
    Kind(
        api_version="apps/v1",
        kind="Deployment",
        ready=deployment_ready,
        pod_template=POD_TEMPLATE,
        restart=TEMPLATE,
        serves=True,
        controller="kube-controller-manager",
    ),
    Kind(
        api_version="argoproj.io/v1alpha1",
        kind="Rollout",
        ready=rollout_ready,
        pod_template=POD_TEMPLATE,
        restart=RESTART_AT,
        serves=True,
        controller="the Argo Rollouts controller",
    ),
    Kind(
        api_version="apps/v1",
        kind="StatefulSet",
        ready=stateful_set_ready,
        pod_template=POD_TEMPLATE,
        restart=TEMPLATE,
        serves=True,
        controller="kube-controller-manager",
    ),
    Kind(
        api_version="apps/v1",
        kind="DaemonSet",
        ready=daemon_set_ready,
        pod_template=POD_TEMPLATE,
        restart=TEMPLATE,
        serves=True,
        controller="kube-controller-manager",
    ),
    Kind(
        api_version="batch/v1",
        kind="CronJob",
        pod_template=("spec", "jobTemplate", "spec", "template"),
        restart=NEXT_RUN,
    ),
    Kind(api_version="policy/v1", kind="PodDisruptionBudget"),
    Kind(api_version="autoscaling/v2", kind="HorizontalPodAutoscaler"),
    Kind(api_version="networking.k8s.io/v1", kind="Ingress"),
    Kind(api_version="monitoring.coreos.com/v1", kind="ServiceMonitor"),
    Kind(api_version="monitoring.coreos.com/v1", kind="PrometheusRule"),
)


def kind_of(kind: str | None) -> Kind | None:
    """The table's row for a kind name, or None for a kind it does not know."""
    return next((k for k in KINDS if k.kind == kind), None)


def apply_rank(kind: str) -> int:
    """Where objects of `kind` go in the apply order (unknown kinds last)."""
    names = [k.kind for k in KINDS]
    return names.index(kind) if kind in names else len(names)


def waits(kind: str | None) -> bool:
    """Whether a deploy waits for objects of this kind to be ready."""
    row = kind_of(kind)
    return row is not None and row.ready is not None


def before_tasks(kind: str) -> bool:
    """Whether objects of `kind` are applied before the tasks run: what a task may need (its
    volumes, config, account, the policies its pods run under) sorts before the Services."""
    return apply_rank(kind) < apply_rank("Service")


def prunable_kinds() -> list[tuple[str, str]]:
    """(apiVersion, kind) of every kind prune and `down` may delete."""
    return [k.ref for k in KINDS if k.prunable]


def labelled_kinds() -> list[tuple[str, str]]:
    """(apiVersion, kind) of every kind `down` finds by the environment's labels."""
    return [k.ref for k in KINDS if k.prunable and k.by_label]


def serving_kinds() -> list[tuple[str, str]]:
    """(apiVersion, kind) of the kinds whose objects run the environment's pods (`status`)."""
    return [k.ref for k in KINDS if k.serves]


def pod_kinds() -> list[Kind]:
    """The kinds whose objects run pods from a template (Secret users)."""
    return [k for k in KINDS if k.pod_template is not None]
