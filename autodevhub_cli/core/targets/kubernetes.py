"""The Kubernetes target: server-side apply in dependency order, prune, wait with diagnosis,
blue-green promote/abort for Argo Rollouts, server-side dry-run diff, and a Lease lock.
"""

from __future__ import annotations

import copy
import difflib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from autodevhub_cli.core.adapters.kube import Kube, ObjectRef
from autodevhub_cli.core.environment import Environment
from autodevhub_cli.core.errors import ApplyError, RolloutError
from autodevhub_cli.core.project import Project

log = logging.getLogger("autodevhub.kubernetes")
STEP_LABEL = "autodevhub.io/step"
# What prune looks at: every kind autodevhub renders (Namespaces are never pruned).
PRUNE_KINDS = [
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Service"),
    ("batch/v1", "Job"),
    ("apps/v1", "Deployment"),
    ("argoproj.io/v1alpha1", "Rollout"),
    ("batch/v1", "CronJob"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("networking.k8s.io/v1", "Ingress"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
]
FATAL_WAITING = {
    "ImagePullBackOff",
    "ErrImagePull",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
    "RunContainerError",
}
_VOLATILE_META = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation")


def load_documents(rendered: Path) -> list[dict[str, Any]]:
    """The manifests a release applies, in apply order."""
    import yaml

    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(rendered.read_text(encoding="utf-8"), Loader=loader) if d]


class KubernetesTarget:
    """Applies rendered manifests to the cluster of the environment's kube context."""

    name = "kubernetes"
    rendered_filename = "manifests.yaml"

    def __init__(
        self,
        environment: Environment,
        *,
        context: str | None = None,
        kubeconfig: str | None = None,
        force_conflicts: bool = False,
        prune: bool = True,
        kube: Kube | None = None,
        poll_seconds: float = 1.0,
        say: Callable[[str, str], None] | None = None,
    ) -> None:
        self.environment = environment
        self.context = context or environment.kubernetes.context
        self.kubeconfig = kubeconfig or environment.kubernetes.kubeconfig
        self.force_conflicts = force_conflicts
        self.prune_enabled = prune
        self._kube = kube
        self.poll_seconds = poll_seconds
        self.say = say or (lambda _step, _message: None)

    @property
    def kube(self) -> Kube:
        """The cluster connection, opened on first use."""
        if self._kube is None:
            self._kube = Kube.connect(self.context, self.kubeconfig)
        return self._kube

    @property
    def selector(self) -> str:
        """Labels every object of this environment carries."""
        env = self.environment
        return (
            "app.kubernetes.io/managed-by=autodevhub,"
            f"app.kubernetes.io/instance={env.app}-{env.name}"
        )

    # --- lock -------------------------------------------------------------------------------

    @contextmanager
    def lock(self, project: Project, command: str) -> Iterator[None]:
        """A coordination.k8s.io Lease per environment: one deploy at a time, cluster-wide."""
        from autodevhub_cli.core.targets.lease import Lease

        lease = Lease(self.kube, self.environment.namespace, f"autodevhub-{self.environment.name}")
        with lease.hold(command):
            yield

    # --- apply ------------------------------------------------------------------------------

    def migrate(self, rendered: Path, timeout: float) -> None:
        """Apply the namespace and the migration Job, and wait for the Job to complete."""
        docs = load_documents(rendered)
        jobs = [d for d in docs if d["kind"] == "Job" and _label(d, STEP_LABEL) == "migrate"]
        if not jobs:
            return
        for doc in docs:
            if doc["kind"] == "Namespace":
                self.kube.apply(doc, force=self.force_conflicts)
        deadline = time.monotonic() + timeout
        for job in jobs:
            self.say("migrate", f"job {job['metadata']['name']}")
            self.kube.apply(job, force=self.force_conflicts)
            self._wait_for(job, deadline)

    def apply(self, rendered: Path, timeout: float) -> None:
        """Apply every object in order, prune what is no longer rendered, wait until ready."""
        docs = load_documents(rendered)
        self.apply_documents(docs)
        if self.prune_enabled:
            for ref in self.prunable(docs):
                self.say("prune", f"deleting {ref}")
                self.kube.delete(ref)
        deadline = time.monotonic() + timeout
        for doc in docs:
            if doc["kind"] in ("Deployment", "Rollout", "Job"):
                self._wait_for(doc, deadline)

    def apply_documents(self, docs: list[dict[str, Any]], dry_run: bool = False) -> list[Any]:
        """Server-side apply each document; an HPA's target keeps the replicas the HPA set."""
        scaled = {
            (
                d["spec"]["scaleTargetRef"]["kind"],
                _namespace(d),
                d["spec"]["scaleTargetRef"]["name"],
            )
            for d in docs
            if d["kind"] == "HorizontalPodAutoscaler"
        }
        results = []
        for doc in docs:
            body = copy.deepcopy(doc)
            ref = ObjectRef.of(body)
            if (ref.kind, ref.namespace, ref.name) in scaled and self.kube.get(ref) is not None:
                # The HPA owns replicas: re-applying them would fight its scaling.
                body.get("spec", {}).pop("replicas", None)
            self.say("apply", str(ref))
            results.append(self.kube.apply(body, force=self.force_conflicts, dry_run=dry_run))
        return results

    def prunable(self, docs: list[dict[str, Any]]) -> list[ObjectRef]:
        """Objects labelled as this environment's that the rendered output no longer has."""
        rendered = {ObjectRef.of(d) for d in docs}
        namespace = self.environment.namespace
        found = []
        for api_version, kind in PRUNE_KINDS:
            if not self.kube.has(api_version, kind):
                continue
            for item in self.kube.list_objects(api_version, kind, namespace, self.selector):
                ref = ObjectRef.of({**item, "apiVersion": api_version, "kind": kind})
                if ref not in rendered:
                    found.append(ref)
        return found

    # --- wait -------------------------------------------------------------------------------

    def _wait_for(self, doc: dict[str, Any], deadline: float, phase: str = "ready") -> None:
        ref = ObjectRef.of(doc)
        self.say("wait", f"{ref} ({phase})")
        while True:
            live = self.kube.get(ref)
            if live is not None:
                verdict = _readiness(live, phase)
                if verdict == "ready":
                    return
                if verdict.startswith("failed"):
                    raise RolloutError(
                        f"{ref} {verdict[len('failed: ') :]}. {self.diagnose(live)}",
                        hint="The previous release is restored automatically by deploy; fix "
                        "the cause above and deploy again.",
                    )
                fatal = self._fatal_pods(live)
                if fatal:
                    raise RolloutError(
                        f"{ref} cannot start: {fatal}",
                        hint="Fix the cause above; `autodevhub status` shows the pods.",
                    )
            if time.monotonic() >= deadline:
                diagnosis = self.diagnose(live) if live else "the object does not exist"
                raise RolloutError(
                    f"{ref} was not {phase} before the deadline: {diagnosis}",
                    hint="Raise --timeout if it is only slow, else fix the cause above.",
                )
            time.sleep(self.poll_seconds)

    def _pods(self, live: dict[str, Any]) -> list[dict[str, Any]]:
        spec = live.get("spec") or {}
        match = (spec.get("selector") or {}).get("matchLabels") or {}
        if live.get("kind") == "Job":
            match = {"job-name": live["metadata"]["name"]}
        if not match:
            return []
        selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
        return self.kube.list_objects("v1", "Pod", _namespace(live), selector)

    def _fatal_pods(self, live: dict[str, Any]) -> str:
        for pod in self._pods(live):
            reason = _pod_problem(pod)
            if reason and (reason[0] in FATAL_WAITING or reason[0] == "Unschedulable"):
                return self._pod_report(pod, reason)
        return ""

    def diagnose(self, live: dict[str, Any]) -> str:
        """Why a workload is not ready: each unready pod, its reason, events and last log lines."""
        reports = []
        for pod in self._pods(live):
            reason = _pod_problem(pod)
            if reason:
                reports.append(self._pod_report(pod, reason))
        if reports:
            return " ".join(reports)
        status = live.get("status") or {}
        conditions = "; ".join(
            f"{c.get('type')}={c.get('status')} ({c.get('reason', '')}: {c.get('message', '')})"
            for c in status.get("conditions") or []
        )
        return f"no failing pod found; status conditions: {conditions or 'none reported'}"

    def _pod_report(self, pod: dict[str, Any], reason: tuple[str, str, str | None]) -> str:
        meta = pod["metadata"]
        what, message, container = reason
        events = self.kube.events(meta.get("namespace", ""), meta["name"])[-3:]
        event_text = "; ".join(f"{e.get('reason')}: {e.get('message')}" for e in events)
        logs = self.kube.pod_log(meta.get("namespace", ""), meta["name"], container, tail=5)
        log_text = " | ".join(line.strip() for line in logs.strip().splitlines()[-3:])
        parts = [f"pod {meta['name']}: {what}" + (f" ({message})" if message else "")]
        if event_text:
            parts.append(f"events: {event_text}")
        if log_text:
            parts.append(f"last log lines: {log_text}")
        return "; ".join(parts) + "."

    # --- blue-green -------------------------------------------------------------------------

    def rollouts(self, rendered: Path) -> list[dict[str, Any]]:
        """The Argo Rollouts a release applies."""
        return [d for d in load_documents(rendered) if d["kind"] == "Rollout"]

    def promote(self, rendered: Path, timeout: float) -> None:
        """Promote each paused blue-green Rollout and wait until the new version is active."""
        deadline = time.monotonic() + timeout
        for doc in self.rollouts(rendered):
            ref = ObjectRef.of(doc)
            live = self.kube.get(ref) or {}
            if (live.get("status") or {}).get("pauseConditions"):
                self.kube.merge_patch(ref, {"status": {"pauseConditions": None}}, "status")
            if (live.get("spec") or {}).get("paused"):
                self.kube.merge_patch(ref, {"spec": {"paused": False}})
            self.say("promote", str(ref))
            self._wait_for(doc, deadline, phase="promoted")

    def abort(self, rendered: Path) -> None:
        """Abort each Rollout: the active Service keeps pointing at the stable version."""
        for doc in self.rollouts(rendered):
            ref = ObjectRef.of(doc)
            self.say("abort", str(ref))
            self.kube.merge_patch(ref, {"status": {"abort": True}}, "status")

    # --- read -------------------------------------------------------------------------------

    def diff(self, rendered: Path) -> str:
        """What applying would change: server-side dry-run against the live objects."""
        docs = load_documents(rendered)
        chunks = []
        new_namespaces: set[str] = set()  # rendered Namespaces the cluster does not have yet
        for doc in docs:
            ref = ObjectRef.of(doc)
            if ref.namespace in new_namespaces:
                # The server cannot dry-run into a namespace that does not exist yet; show the
                # object as rendered (its schema was checked at render).
                live, after = None, doc
                target = f"new/{ref} (as rendered: its namespace is created by this deploy)"
            else:
                live = self.kube.get(ref)
                after = self.kube.apply(doc, force=self.force_conflicts, dry_run=True)
                target = f"new/{ref}"
                if ref.kind == "Namespace" and live is None:
                    new_namespaces.add(ref.name)
            before_text = _yaml(_clean(live)) if live else ""
            after_text = _yaml(_clean(after))
            if before_text != after_text:
                chunks.append(
                    "".join(
                        difflib.unified_diff(
                            before_text.splitlines(keepends=True),
                            after_text.splitlines(keepends=True),
                            fromfile=f"live/{ref}" if live else "/dev/null",
                            tofile=target,
                        )
                    )
                )
        if self.prune_enabled:
            for ref in self.prunable(docs):
                chunks.append(f"--- live/{ref}\n+++ /dev/null\n(pruned: no longer rendered)\n")
        return "".join(chunks)

    def workloads(self, rendered: Path) -> list[dict[str, Any]]:
        """Deployments, Rollouts and Jobs with their readiness."""
        rows = []
        for doc in load_documents(rendered):
            if doc["kind"] not in ("Deployment", "Rollout", "Job"):
                continue
            live = self.kube.get(ObjectRef.of(doc)) or {}
            status = live.get("status") or {}
            rows.append(
                {
                    "name": doc["metadata"]["name"],
                    "service": f"{doc['kind']}/{doc['metadata']['name']}",
                    "image": _image(doc),
                    "state": status.get("phase") or _readiness(live, "ready") if live else "absent",
                    "health": f"{status.get('availableReplicas', 0)}/"
                    f"{(live.get('spec') or {}).get('replicas', '-')}"
                    if live
                    else None,
                    "status": status.get("phase") or "",
                }
            )
        return rows

    def remove(self, rendered: Path, volumes: bool) -> None:
        """Delete every object of the environment (PersistentVolumeClaims only with volumes)."""
        for ref in reversed(self.prunable([])):
            if ref.kind == "PersistentVolumeClaim" and not volumes:
                continue
            self.say("delete", str(ref))
            self.kube.delete(ref)


def _label(doc: dict[str, Any], key: str) -> str | None:
    return ((doc.get("metadata") or {}).get("labels") or {}).get(key)


def _namespace(doc: dict[str, Any]) -> str:
    return str((doc.get("metadata") or {}).get("namespace") or "")


def _image(doc: dict[str, Any]) -> str:
    try:
        return str(doc["spec"]["template"]["spec"]["containers"][0]["image"])
    except (KeyError, IndexError):
        return ""


def _readiness(live: dict[str, Any], phase: str) -> str:
    """`ready`, `waiting: why` or `failed: why` for a Deployment, Rollout or Job."""
    kind = live.get("kind")
    status = live.get("status") or {}
    spec = live.get("spec") or {}
    generation = (live.get("metadata") or {}).get("generation", 0)
    if kind == "Job":
        if status.get("succeeded", 0) >= 1:
            return "ready"
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Failed" and condition.get("status") == "True":
                return f"failed: failed ({condition.get('reason')}: {condition.get('message')})"
        return "waiting: not complete"
    if kind == "Deployment":
        for condition in status.get("conditions") or []:
            if condition.get("reason") == "ProgressDeadlineExceeded":
                return f"failed: exceeded its progress deadline ({condition.get('message')})"
        want = spec.get("replicas", 1)
        if status.get("observedGeneration", 0) < generation:
            return "waiting: not observed"
        if status.get("updatedReplicas", 0) < want or status.get("availableReplicas", 0) < want:
            return "waiting: replicas not available"
        if status.get("replicas", 0) > status.get("updatedReplicas", 0):
            return "waiting: old replicas terminating"
        return "ready"
    if kind == "Rollout":
        if str(status.get("observedGeneration", "")) != str(generation):
            return "waiting: not observed"
        if status.get("phase") == "Degraded":
            return f"failed: is degraded ({status.get('message', 'aborted')})"
        current = status.get("currentPodHash")
        blue_green = status.get("blueGreen") or {}
        if phase == "promoted":
            ok = blue_green.get("activeSelector") == current and status.get("phase") == "Healthy"
            return "ready" if ok else "waiting: not promoted"
        if status.get("phase") in ("Healthy", "Paused") and current in (
            blue_green.get("previewSelector"),
            blue_green.get("activeSelector"),
        ):
            return "ready"
        return "waiting: new version not up"
    return "ready"


def _pod_problem(pod: dict[str, Any]) -> tuple[str, str, str | None] | None:
    """(reason, message, container) for a pod that is not running ready, else None."""
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return "Unschedulable", str(condition.get("message", "")), None
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return str(waiting["reason"]), str(waiting.get("message", "")), container.get("name")
        if not container.get("ready", False):
            return "NotReady", "running but failing its readiness probe", container.get("name")
    if status.get("phase") not in (None, "Running", "Succeeded"):
        return str(status.get("phase")), str(status.get("message", "")), None
    return None


def _clean(obj: dict[str, Any] | None) -> dict[str, Any]:
    if not obj:
        return {}
    cleaned = copy.deepcopy(obj)
    cleaned.pop("status", None)
    meta = cleaned.get("metadata") or {}
    for key in _VOLATILE_META:
        meta.pop(key, None)
    return cleaned


def _yaml(obj: dict[str, Any]) -> str:
    from autodevhub_cli.core.templates import to_yaml

    return to_yaml(obj) + "\n" if obj else ""


def require_rollout_support(kube: Kube) -> None:
    """Refuse a blue-green deploy on a cluster without Argo Rollouts."""
    if not kube.has("argoproj.io/v1alpha1", "Rollout"):
        raise ApplyError(
            "The environment uses strategy blue-green, but the cluster does not serve "
            "argoproj.io/v1alpha1 Rollout.",
            hint="Install Argo Rollouts in the cluster, or set rollout.strategy: rolling.",
        )
