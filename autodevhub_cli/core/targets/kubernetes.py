"""The Kubernetes target: server-side apply in dependency order, prune, wait with diagnosis,
blue-green promote/abort for Argo Rollouts, server-side dry-run diff, and a Lease lock.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import difflib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autodevhub_cli.core.adapters.kube import (
    ApplyConflict,
    Kube,
    ObjectRef,
    PodLog,
    applied_fields,
    owns,
    parse_time,
)
from autodevhub_cli.core.environment import Environment
from autodevhub_cli.core.errors import ApplyError, RolloutError
from autodevhub_cli.core.kinds import (
    RESTART_AT,
    apply_rank,
    before_tasks,
    kind_of,
    labelled_kinds,
    serving_kinds,
    waits,
)
from autodevhub_cli.core.redact import Redactor
from autodevhub_cli.core.smoke import Endpoint, Endpoints, configured_endpoints
from autodevhub_cli.core.targets import Replica, TaskRef, Workload
from autodevhub_cli.core.targets.readiness import (
    State,
    observed,
    pod_problem,
    readiness,
)

if TYPE_CHECKING:
    from autodevhub_cli.core.targets.kube_store import KubeReleaseDriver
    from autodevhub_cli.core.targets.lease import Lease

log = logging.getLogger("autodevhub.kubernetes")
STEP_LABEL = "autodevhub.io/step"
TASK_OF_LABEL = "autodevhub.io/task-of"
COMPONENT_LABEL = "app.kubernetes.io/component"
ROLLOUT_API = "argoproj.io/v1alpha1"
ROLLOUT_HASH_LABEL = "rollouts-pod-template-hash"  # which version of a Rollout a pod runs
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
# Holds a field autodevhub hands to a controller until the controller writes it.
HANDOVER_MANAGER = "autodevhub-handover"
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

    loader: type[yaml.SafeLoader | yaml.CSafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(rendered.read_text(encoding="utf-8"), Loader=loader) if d]


class KubernetesTarget:
    """Applies rendered manifests to the cluster of the environment's kube context."""

    name = "kubernetes"
    rendered_filename = "manifests.yaml"
    runs_local_images = False

    def __init__(
        self,
        environment: Environment,
        *,
        context: str | None = None,
        kubeconfig: str | None = None,
        force_conflicts: bool = False,
        prune: bool = True,
        kube: Kube | None = None,
        # How often a wait reads the object again: a quarter second, so a Job that completes
        # (a migration) is seen within 0.25 s rather than up to a second later.
        poll_seconds: float = 0.25,
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
        self._lease: Lease | None = None

    @property
    def blue_green(self) -> bool:
        """A component of the environment is an Argo Rollouts blue-green Rollout."""
        return bool(self.environment.blue_green())

    @contextmanager
    def smoke_endpoints(self, environment: Environment, preview: bool) -> Iterator[Endpoints]:
        """The Ingress for the components with ingress paths, or `kubectl port-forward` to the
        Service named after each component (smoke.port_forward; `<name>-preview` for the
        preview of a blue-green one); `smoke.urls` win."""
        configured = configured_endpoints(environment, preview)
        blue_green = set(environment.blue_green())
        found: Endpoints = {}
        if not environment.smoke.port_forward:
            if environment.ingress.enabled:
                scheme = "https" if environment.ingress.tls.enabled else "http"
                url = f"{scheme}://{environment.ingress.hosts[0]}"
                for name, c in environment.components.items():
                    if c.expose.ingress:
                        note = ""
                        if preview and name in blue_green:
                            note = (
                                f"the active version: the Ingress does not reach the preview; "
                                f"set smoke.preview_urls.{name} or smoke.port_forward"
                            )
                        found[name] = Endpoint(url, shared=True, note=note)
            yield {**found, **configured}
            return
        from autodevhub_cli.core.adapters.port_forward import forward

        wanted = {check.component for check in environment.smoke.checks}
        wanted |= {n for n, c in environment.components.items() if c.expose.ingress}
        with contextlib.ExitStack() as stack:
            for name, c in environment.components.items():
                if name not in wanted or name in configured or not c.ports:
                    continue
                svc = f"{name}-preview" if preview and name in blue_green else name
                url = stack.enter_context(
                    forward(
                        svc,
                        c.port_of(),
                        environment.namespace,
                        context=self.context,
                        kubeconfig=self.kubeconfig,
                    )
                )
                found[name] = Endpoint(url)
            yield {**found, **configured}

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

    def release_driver(self) -> KubeReleaseDriver:
        """The release records, as Secrets in the environment's namespace."""
        from autodevhub_cli.core.targets.kube_store import KubeReleaseDriver

        env = self.environment
        return KubeReleaseDriver(self.kube, env.namespace, env.name)

    @contextmanager
    def lock(self, command: str) -> Iterator[None]:
        """A coordination.k8s.io Lease per environment: one deploy at a time, cluster-wide."""
        from autodevhub_cli.core.targets.lease import Lease

        lease = Lease(self.kube, self.environment.namespace, f"autodevhub-{self.environment.name}")
        with lease.hold(command):
            self._lease = lease
            try:
                yield
            finally:
                self._lease = None

    def check_lock(self) -> None:
        """Raise LockLostError when the Lease held by `lock` is no longer this deploy's."""
        if self._lease is not None:
            self._lease.check()

    # --- apply ------------------------------------------------------------------------------

    def run_tasks(self, rendered: Path, timeout: float, tasks: list[TaskRef]) -> None:
        """Apply what the tasks may need (the namespace, claims, config: every kind the table
        of kinds orders before the Services),
        then each task's Job (labelled `autodevhub.io/task-of: <component>` and
        `autodevhub.io/step: <task>`), in order, waiting for each to complete. Task Jobs are
        applied here only: `apply` leaves them out, so a skipped task never runs and a rollback
        never runs the old release's tasks (as on Compose)."""
        docs = load_documents(rendered)
        wanted = {(ref.component, ref.task) for ref in tasks}
        jobs = [d for d in docs if _is_task(d) and _task_key(d) in wanted]
        if not jobs:
            return
        for doc in docs:
            if before_tasks(doc["kind"]):
                self.say("apply", str(ObjectRef.of(doc)))
                self._apply_one(doc, {}, dry_run=False)
        deadline = time.monotonic() + timeout
        for job in jobs:
            self.say("tasks", f"job {job['metadata']['name']}")
            self.kube.apply(job, force=self.force_conflicts)
            self.wait_for(job, deadline)

    def apply(self, rendered: Path, timeout: float) -> None:
        """Apply every object in order and wait until each kind the table says to wait for is
        ready. Nothing is deleted here: `prune` runs once the release passed its checks, so a
        failed release rolls back to objects that are still there."""
        docs = load_documents(rendered)
        self.apply_documents([d for d in docs if not _is_task(d)])
        deadline = time.monotonic() + timeout
        for doc in docs:
            if waits(doc["kind"]) and not _is_task(doc):
                self.wait_for(doc, deadline)

    def prune(self, rendered: Path, before: Path) -> list[str]:
        """Delete what the release applied before (`before`, the output of the release that
        served) had and this one (`rendered`) no longer has, as Helm does; only objects
        autodevhub applied and no controller owns."""
        pruned = []
        for ref in self.prunable(load_documents(rendered), load_documents(before)):
            self.say("prune", f"deleting {ref}")
            self.kube.delete(ref)
            pruned.append(str(ref))
        return pruned

    def apply_documents(
        self, docs: list[dict[str, Any]], dry_run: bool = False
    ) -> list[dict[str, Any]]:
        """Server-side apply each document, leaving out the fields another controller runs."""
        handed_over = _handed_over_fields(docs)
        results = []
        for doc in docs:
            self.say("apply", str(ObjectRef.of(doc)))
            results.append(self._apply_one(doc, handed_over, dry_run))
        return results

    def _apply_one(
        self,
        doc: dict[str, Any],
        handed_over: dict[tuple[str, str, str], str],
        dry_run: bool,
    ) -> dict[str, Any]:
        body = copy.deepcopy(doc)
        ref = ObjectRef.of(body)
        field = handed_over.get((ref.kind, ref.namespace, ref.name))
        if field is not None:
            self._hand_over(ref, body, field, dry_run)
        return self.kube.apply(body, force=self.force_conflicts, dry_run=dry_run)

    def _hand_over(self, ref: ObjectRef, body: dict[str, Any], field: str, dry_run: bool) -> None:
        """Leave `spec.<field>` of an existing object to the controller that runs it.

        An HPA owns `replicas` of its target, and Argo Rollouts the `selector` of the Services
        a Rollout names (it adds `rollouts-pod-template-hash`; the selector is an atomic map,
        so applying it again would conflict, and forcing would strip the hash). A field that
        autodevhub still owns is first handed to a placeholder manager with its live value, as
        the Kubernetes docs' "Transferring ownership" says: dropping it at once would reset
        `replicas` to 1 while the HPA sits at minReplicas and writes nothing.
        """
        live = self.kube.get(ref)
        if live is None:
            return  # created with the rendered value; the controller takes over from there
        spec = body.setdefault("spec", {})
        value = (live.get("spec") or {}).get(field)
        if not owns(live, "spec", field):
            spec.pop(field, None)
        elif field == "replicas" and value is not None:
            if dry_run:
                spec[field] = value  # what the real apply keeps
                return
            self.say("apply", f"{ref}: handing spec.{field} ({value}) over to its controller")
            handover = {
                "apiVersion": ref.api_version,
                "kind": ref.kind,
                "metadata": {"name": ref.name, "namespace": ref.namespace},
                "spec": {field: value},
            }
            with contextlib.suppress(ApplyConflict):  # the controller owns it already
                self.kube.apply(handover, manager=HANDOVER_MANAGER)
            spec.pop(field, None)

    def prunable(self, docs: list[dict[str, Any]], before: list[dict[str, Any]]) -> list[ObjectRef]:
        """The objects of `before` (the release that served) that `docs` no longer has and
        that still exist, in reverse apply order.

        Only what autodevhub itself applied: objects a controller made (the Jobs of a CronJob,
        the ReplicaSets of a Deployment) are the controller's to delete, and deleting a running
        backup Job would kill its pg_dump.
        """
        rendered = {ObjectRef.of(d) for d in docs}
        gone = {ObjectRef.of(d) for d in before} - rendered
        return [ref for ref in _reverse_apply_order(gone) if self._ours(self.kube.get(ref))]

    def _ours(self, live: dict[str, Any] | None) -> bool:
        """Whether a live object is autodevhub's to delete: it applied it, no controller owns
        it, and its kind is one prune and `down` may delete."""
        if live is None:
            return False
        row = kind_of(live.get("kind"))
        meta = live.get("metadata") or {}
        controlled = any(o.get("controller") for o in meta.get("ownerReferences") or [])
        return row is not None and row.prunable and not controlled and bool(applied_fields(live))

    # --- wait -------------------------------------------------------------------------------

    def wait_for(self, doc: dict[str, Any], deadline: float, phase: str = "ready") -> None:
        """Poll a Deployment, Rollout or Job until ready; raise RolloutError with a diagnosis."""
        ref = ObjectRef.of(doc)
        self.say("wait", f"{ref} ({phase})")
        while True:
            live = self.kube.get(ref)
            if live is not None:
                verdict = readiness(live, phase)
                if verdict.state is State.READY:
                    return
                if verdict.state is State.FAILED:
                    raise RolloutError(
                        f"{ref} {verdict.reason}. {self.diagnose(live)}",
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
        """The pods of the workload's current version, without those already terminating.

        Pods of the previous ReplicaSet (or of an aborted blue-green preview, kept for
        abortScaleDownDelaySeconds) share the selector; blaming one of them for the new
        version would send the user after the wrong pod. Until the controller has seen the
        applied spec, its current version is not known at all: none is returned (a rollback's
        first look would otherwise blame the failed release's crashing pods, as CI saw).
        """
        spec = live.get("spec") or {}
        match = dict((spec.get("selector") or {}).get("matchLabels") or {})
        kind = live.get("kind")
        if _unseen_by(live):
            return []
        if kind == "Job":
            match = {"job-name": live["metadata"]["name"]}
        elif kind == "Rollout":
            current = (live.get("status") or {}).get("currentPodHash")
            if current:
                match[ROLLOUT_HASH_LABEL] = current
        elif kind == "StatefulSet":
            revision = (live.get("status") or {}).get("updateRevision")
            if revision:
                match["controller-revision-hash"] = revision
        elif kind == "Deployment":
            current = self._current_template_hash(live, match)
            if current:
                match["pod-template-hash"] = current
        if not match:
            return []
        selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
        pods = self.kube.list_objects("v1", "Pod", _namespace(live), selector)
        return [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]

    def _current_template_hash(self, live: dict[str, Any], match: dict[str, str]) -> str | None:
        """The pod-template-hash of the Deployment's ReplicaSet at its current revision."""
        meta = live.get("metadata") or {}
        revision = (meta.get("annotations") or {}).get(REVISION_ANNOTATION)
        if not revision or not match or not self.kube.has("apps/v1", "ReplicaSet"):
            return None
        selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
        for rs in self.kube.list_objects("apps/v1", "ReplicaSet", _namespace(live), selector):
            rs_meta = rs.get("metadata") or {}
            owners = {o.get("uid") for o in rs_meta.get("ownerReferences") or []}
            if (
                meta.get("uid") in owners
                and (rs_meta.get("annotations") or {}).get(REVISION_ANNOTATION) == revision
            ):
                return (rs_meta.get("labels") or {}).get("pod-template-hash")
        return None

    def _fatal_pods(self, live: dict[str, Any]) -> str:
        for pod in self._pods(live):
            reason = pod_problem(pod)
            if reason and reason[0] == "Unschedulable" and _waits_for_claim(reason[1]):
                continue  # its claim binds in a moment (a provisioner, or a PV being matched)
            if reason and (reason[0] in FATAL_WAITING or reason[0] == "Unschedulable"):
                return self._pod_report(pod, reason)
        return ""

    def diagnose(self, live: dict[str, Any]) -> str:
        """Why a workload is not ready: each unready pod, its reason, events and last log lines."""
        reports = []
        for pod in self._pods(live):
            reason = pod_problem(pod)
            if reason:
                reports.append(self._pod_report(pod, reason))
        if reports:
            return " ".join(reports)
        status = live.get("status") or {}
        controller = _unseen_by(live)
        if controller:
            generation = (live.get("metadata") or {}).get("generation")
            return (
                f"its controller has not seen the applied spec (generation {generation}, "
                f"observed {status.get('observedGeneration', 'none')}): check that "
                f"{controller} runs in the cluster"
            )
        conditions = "; ".join(
            f"{c.get('type')}={c.get('status')} ({c.get('reason') or ''}: {c.get('message') or ''})"
            for c in status.get("conditions") or []
        )
        return f"no failing pod found; status conditions: {conditions or 'none reported'}"

    def _pod_report(self, pod: dict[str, Any], reason: tuple[str, str, str | None]) -> str:
        meta = pod["metadata"]
        what, message, container = reason
        events = self.kube.events(meta.get("namespace", ""), meta["name"])[-3:]
        event_text = "; ".join(
            f"{e.get('reason') or 'event'}: {e.get('message') or '(no message)'}" for e in events
        )
        logs = self.kube.pod_log(meta.get("namespace", ""), meta["name"], container, tail=5)
        log_text = " | ".join(line.strip() for line in logs.strip().splitlines()[-3:])
        if log_text:  # what the application printed: its secrets stay hidden
            hide = Redactor(self.secret_values(list(self.environment.components)))
            log_text = hide.text(log_text)
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
            self.wait_for(doc, deadline, phase="promoted")

    def preview_waiting(self, rendered: Path) -> bool:
        """Whether a Rollout of the release has a preview waiting for promotion."""
        return any(
            _preview(self.kube.get(ObjectRef.of(doc)) or {}) for doc in self.rollouts(rendered)
        )

    def abort(self, rendered: Path) -> None:
        """Abort each Rollout: the active Service keeps pointing at the stable version."""
        for doc in self.rollouts(rendered):
            ref = ObjectRef.of(doc)
            self.say("abort", str(ref))
            self.kube.merge_patch(ref, {"status": {"abort": True}}, "status")

    # --- restart ----------------------------------------------------------------------------

    def restart(self, workload: dict[str, Any], annotations: dict[str, str]) -> Restart:
        """Restart a workload's pods in place (after a Secret changed), noting why.

        A Deployment restarts through its pod template (the annotations go there, like
        `kubectl rollout restart`). A Rollout's template must not change: that makes a new
        revision, which a blue-green Rollout parks as the preview while the active pods keep
        the old values; Argo's own restart is `spec.restartAt`, which replaces the running
        pods of the current revision.
        """
        ref = ObjectRef.of(workload)
        self.say("restart", str(ref))
        row = kind_of(ref.kind)
        if row is not None and row.restart == RESTART_AT:
            since = _rfc3339(restart_moment(dt.datetime.now(dt.UTC)))
            patch: dict[str, object] = {
                "metadata": {"annotations": annotations},
                "spec": {"restartAt": since},
            }
        else:
            since = ""
            # Annotations on the pod template: the controller replaces the pods.
            patch = {"metadata": {"annotations": annotations}}
            for key in reversed(row.pod_template if row and row.pod_template else ()):
                patch = {key: patch}
        self.kube.merge_patch(ref, patch)
        return Restart(ref=ref, since=since)

    def wait_restarted(self, restart: Restart, deadline: float) -> None:
        """Wait until the restarted workload's pods are all new and ready."""
        if not restart.since:
            self.wait_for(_ref_doc(restart.ref), deadline)
            return
        wanted = parse_time(restart.since)
        self.say("wait", f"{restart.ref} (restarted since {restart.since})")
        while True:
            live = self.kube.get(restart.ref) or {}
            done = parse_time((live.get("status") or {}).get("restartedAt"))
            if done is not None and wanted is not None and done >= wanted:
                self.wait_for(live, deadline)
                return
            if time.monotonic() >= deadline:
                raise RolloutError(
                    f"{restart.ref} did not finish its restart (spec.restartAt "
                    f"{restart.since}) before the deadline: {self.diagnose(live)}",
                    hint="`kubectl argo rollouts get rollout` shows the restart; raise --timeout "
                    "if it is only slow.",
                )
            time.sleep(self.poll_seconds)

    # --- read -------------------------------------------------------------------------------

    def diff(self, rendered: Path, before: Path | None = None) -> str:
        """What applying would change: server-side dry-run against the live objects, and what
        prune would delete (what `before`, the serving release's output, has and this lacks)."""
        docs = load_documents(rendered)
        handed_over = _handed_over_fields(docs)
        chunks = []
        new_namespaces: set[str] = set()  # rendered Namespaces the cluster does not have yet
        for doc in docs:
            if _is_task(doc):
                continue  # a task is a step of the deploy, not a state it leaves
            ref = ObjectRef.of(doc)
            if ref.namespace in new_namespaces:
                # The server cannot dry-run into a namespace that does not exist yet; show the
                # object as rendered (its schema was checked at render).
                live, after = None, doc
                target = f"new/{ref} (as rendered: its namespace is created by this deploy)"
            else:
                live = self.kube.get(ref)
                after = self._apply_one(doc, handed_over, dry_run=True)
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
        if self.prune_enabled and before is not None:
            for ref in self.prunable(docs, load_documents(before)):
                chunks.append(f"--- live/{ref}\n+++ /dev/null\n(pruned: no longer rendered)\n")
        return "".join(chunks)

    def live(self) -> list[Workload]:
        """What runs now: each workload of the environment in the cluster (found by its labels,
        not by any record), with its images, replicas and readiness; a blue-green Rollout says
        when a preview waits for promotion."""
        rows: list[Workload] = []
        for api_version, kind in serving_kinds():
            if not self.kube.has(api_version, kind):
                continue
            namespace = self.environment.namespace
            for live in self.kube.list_objects(api_version, kind, namespace, self.selector):
                spec = live.get("spec") or {}
                status = live.get("status") or {}
                pod = (spec.get("template") or {}).get("spec") or {}
                images = [c.get("image", "?") for c in pod.get("containers") or []]
                rows.append(
                    {
                        "name": live["metadata"]["name"],
                        "workload": f"{kind}/{live['metadata']['name']}",
                        "image": ", ".join(images),
                        "state": str(readiness(live)),
                        "health": f"{status.get('availableReplicas') or 0}/"
                        f"{spec.get('replicas', '-')}",
                        "status": str(status.get("phase") or ""),
                        "preview": _preview(live),
                    }
                )
        return rows

    # --- logs -------------------------------------------------------------------------------

    # The kubelet keeps the log of a pod's previous container (`kubectl logs --previous`).
    keeps_previous_logs = True

    def replicas(self, components: Sequence[str]) -> list[Replica]:
        """Every container of the pods of these components in the environment's namespace
        (found by their labels: a blue-green Rollout's preview pods too; task pods left out),
        by component and pod name."""
        rows: list[Replica] = []
        namespace = self.environment.namespace
        roles = self._blue_green_roles(components)
        for pod in self.kube.list_objects("v1", "Pod", namespace, self.selector):
            meta = pod.get("metadata") or {}
            labels = meta.get("labels") or {}
            component = labels.get(COMPONENT_LABEL)
            if not isinstance(component, str) or component not in components:
                continue
            if STEP_LABEL in labels or TASK_OF_LABEL in labels:
                continue
            statuses = {
                s.get("name"): s for s in (pod.get("status") or {}).get("containerStatuses") or []
            }
            containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
            name = str(meta.get("name"))
            short = name.removeprefix(f"{component}-")
            role = ""
            if component in roles:
                template = labels.get(ROLLOUT_HASH_LABEL)
                role = roles[component].get(template, "old") if template else ""
            for container in containers:
                state = statuses.get(container) or {}
                rows.append(
                    Replica(
                        component,
                        name if len(containers) == 1 else f"{name}/{container}",
                        short if len(containers) == 1 else f"{short}/{container}",
                        f"{meta.get('uid')}/{container}",
                        "running" in (state.get("state") or {}),
                        restarted=int(state.get("restartCount") or 0) > 0
                        or "terminated" in (state.get("lastState") or {}),
                        container=container,
                        role=role,
                    )
                )
        order = {name: i for i, name in enumerate(components)}
        return sorted(rows, key=lambda r: (order[r.component], r.name))

    def _blue_green_roles(self, components: Sequence[str]) -> dict[str, dict[str, str]]:
        """For each blue-green component whose Rollout has an active version: its pod-template
        hashes' roles ("active", and "preview" while a new version waits for promotion)."""
        wanted = set(components) & set(self.environment.blue_green())
        if not wanted or not self.kube.has(ROLLOUT_API, "Rollout"):
            return {}
        roles: dict[str, dict[str, str]] = {}
        namespace = self.environment.namespace
        for live in self.kube.list_objects(ROLLOUT_API, "Rollout", namespace, self.selector):
            component = _label(live, COMPONENT_LABEL)
            active, preview = _versions(live)
            if component not in wanted or not active:
                continue
            roles[component] = {active: "active"}
            if preview:
                roles[component][preview] = "preview"
        return roles

    def read_log(
        self,
        replica: Replica,
        *,
        since: dt.datetime | None,
        tail: int | None,
        previous: bool,
        follow: bool,
    ) -> PodLog:
        """The container's log from the API server (the kubelet's), with its timestamps."""
        from autodevhub_cli.core.logs import since_seconds

        return self.kube.read_log(
            self.environment.namespace,
            replica.name.split("/")[0],
            replica.container,
            since_seconds=since_seconds(since) if since is not None else None,
            tail=tail,
            previous=previous,
            follow=follow,
        )

    def secret_values(self, components: Sequence[str]) -> list[str]:
        """The values of the Secret keys these components read, from the cluster (a Secret
        that cannot be read, missing or forbidden, is left out)."""
        import base64

        wanted: dict[str, set[str]] = {}
        for ref in self.environment.secret_refs(components):
            wanted.setdefault(ref.secret, set()).add(ref.key)
        values = []
        for secret, keys in sorted(wanted.items()):
            try:
                live = self.kube.get(ObjectRef("v1", "Secret", self.environment.namespace, secret))
            except ApplyError:
                continue
            data = (live or {}).get("data") or {}
            for key in sorted(keys & set(data)):
                with contextlib.suppress(ValueError):
                    values.append(base64.b64decode(data[key]).decode(errors="replace").strip())
        return values

    def remove(self, rendered: Path, volumes: bool) -> None:
        """Delete every object of the environment (PersistentVolumeClaims only with volumes):
        what the recorded release (`rendered`) has, and what carries the environment's labels,
        of every kind the table finds by label; only objects autodevhub applied."""
        # What the listing read already is not read again; a recorded object it did not find
        # (a Secret, or one that lost its labels) is read on its own.
        found: dict[ObjectRef, dict[str, Any] | None] = {
            ObjectRef.of(d): None for d in load_documents(rendered)
        }
        namespace = self.environment.namespace
        for api_version, kind in labelled_kinds():
            if not self.kube.has(api_version, kind):
                continue
            for item in self.kube.list_objects(api_version, kind, namespace, self.selector):
                live = {**item, "apiVersion": api_version, "kind": kind}
                found[ObjectRef.of(live)] = live
        for ref in _reverse_apply_order(set(found)):
            if ref.kind == "PersistentVolumeClaim" and not volumes:
                continue
            if self._ours(found[ref] or self.kube.get(ref)):
                self.say("delete", str(ref))
                self.kube.delete(ref)


@dataclass(kw_only=True, frozen=True)
class Restart:
    """A restart asked of a workload: which, and (for a Rollout) its restartAt."""

    ref: ObjectRef
    since: str


def _reverse_apply_order(refs: set[ObjectRef]) -> list[ObjectRef]:
    """Objects to delete: dependents first (the reverse of the table's apply order)."""
    return sorted(refs, key=lambda r: (-apply_rank(r.kind), r.namespace, r.name))


def _ref_doc(ref: ObjectRef) -> dict[str, Any]:
    return {
        "apiVersion": ref.api_version,
        "kind": ref.kind,
        "metadata": {"name": ref.name, "namespace": ref.namespace},
    }


def restart_moment(now: dt.datetime) -> dt.datetime:
    """The `spec.restartAt` that replaces every pod running at `now`: the next whole second.

    Argo replaces only pods created strictly before `restartAt`, and creation timestamps have
    whole seconds: a pod created in the second of `now` (a deploy that just finished) has the
    same timestamp as `now` rounded down and would be kept. Argo waits for a `restartAt` in the
    future (it re-queues the Rollout for that moment), so this costs at most a second.
    """
    return now.replace(microsecond=0) + dt.timedelta(seconds=1)


def _rfc3339(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _handed_over_fields(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], str]:
    """(kind, namespace, name) -> the spec field a controller runs once the object exists."""
    fields: dict[tuple[str, str, str], str] = {}
    for doc in docs:
        spec = doc.get("spec") or {}
        if doc["kind"] == "HorizontalPodAutoscaler":
            target = spec.get("scaleTargetRef") or {}
            fields[(str(target.get("kind")), _namespace(doc), str(target.get("name")))] = "replicas"
        elif doc["kind"] == "Rollout":
            for strategy in (spec.get("strategy") or {}).values():
                for key in ("activeService", "previewService", "stableService", "canaryService"):
                    name = strategy.get(key) if isinstance(strategy, dict) else None
                    if name:
                        fields[("Service", _namespace(doc), str(name))] = "selector"
    return fields


def _waits_for_claim(message: str) -> bool:
    """Whether a pod is unschedulable only because a claim it mounts is not bound yet, which
    the first deploy that creates the claim always sees for a moment: a reason to wait (until
    the deadline, whose diagnosis names it), not to fail at once."""
    return "unbound immediate PersistentVolumeClaims" in message


def _is_task(doc: dict[str, Any]) -> bool:
    """Whether a rendered object is a task's Job (run by `run_tasks`, never by `apply`)."""
    return doc["kind"] == "Job" and _label(doc, STEP_LABEL) is not None


def _task_key(doc: dict[str, Any]) -> tuple[str | None, str | None]:
    """(component, task) of a task's Job; the component label of templates written before
    the library (whose Jobs carried the component's labels) still counts."""
    return (_label(doc, TASK_OF_LABEL) or _label(doc, COMPONENT_LABEL), _label(doc, STEP_LABEL))


def _label(doc: dict[str, Any], key: str) -> str | None:
    return ((doc.get("metadata") or {}).get("labels") or {}).get(key)


def _namespace(doc: dict[str, Any]) -> str:
    return str((doc.get("metadata") or {}).get("namespace") or "")


def _unseen_by(live: dict[str, Any]) -> str | None:
    """The controller that has not yet seen the object's applied spec (None once it has, or
    for a kind without one)."""
    row = kind_of(live.get("kind"))
    return row.controller if row and row.controller and not observed(live) else None


def _versions(live: dict[str, Any]) -> tuple[str, str]:
    """A blue-green Rollout's (active, preview) pod-template hashes, as its status says: the
    preview only while it waits for promotion (it differs from the active); '' for none."""
    blue_green = (live.get("status") or {}).get("blueGreen") or {}
    active = blue_green.get("activeSelector") or ""
    preview = blue_green.get("previewSelector") or ""
    return active, preview if preview != active else ""


def _preview(live: dict[str, Any]) -> str:
    """A blue-green Rollout's preview waiting for promotion, in words ('' when none)."""
    active, preview = _versions(live)
    if live.get("kind") != "Rollout" or not preview:
        return ""
    return f"preview {preview} waits for promotion (active {active or None})"


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
    if not kube.has(ROLLOUT_API, "Rollout"):
        raise ApplyError(
            "The environment uses strategy blue-green, but the cluster does not serve "
            "argoproj.io/v1alpha1 Rollout.",
            hint="Install Argo Rollouts in the cluster, or set rollout.strategy: rolling.",
        )
