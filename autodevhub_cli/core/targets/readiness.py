"""Is a Kubernetes workload ready? Read from its live status the way `kubectl rollout status`
reads it: conditions count only once the controller has observed the object's generation, so
a condition left from the previous spec never decides about the new one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class State(enum.Enum):
    """Where a workload stands."""

    READY = "ready"
    WAITING = "waiting"
    FAILED = "failed"


@dataclass(frozen=True)
class Readiness:
    """A verdict on one live object, with the reason in words."""

    state: State
    reason: str = ""

    def __str__(self) -> str:
        return self.state.value + (f": {self.reason}" if self.reason else "")


READY = Readiness(State.READY)


def _waiting(reason: str) -> Readiness:
    return Readiness(State.WAITING, reason)


def _failed(reason: str) -> Readiness:
    return Readiness(State.FAILED, reason)


def readiness(live: dict[str, Any], phase: str = "ready") -> Readiness:
    """The verdict for a live object, by its kind's rule in the table of kinds (a kind without
    one is ready once it exists)."""
    from autodevhub_cli.core.kinds import kind_of

    row = kind_of(live.get("kind"))
    if row is None or row.ready is None:
        return READY
    return row.ready(live, phase)


def job_ready(live: dict[str, Any], phase: str = "ready") -> Readiness:
    """A Job: ready when one pod succeeded, failed on its Failed condition."""
    status = live.get("status") or {}
    if status.get("succeeded", 0) >= 1:
        return READY
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return _failed(f"failed ({condition.get('reason')}: {condition.get('message')})")
    return _waiting("not complete")


def observed(live: dict[str, Any]) -> bool:
    """Whether the object's controller has seen its current generation (Argo Rollouts writes
    observedGeneration as a string)."""
    generation = (live.get("metadata") or {}).get("generation", 0)
    seen = (live.get("status") or {}).get("observedGeneration", 0)
    if isinstance(seen, str):
        return seen == str(generation)
    return bool(seen >= generation)


def deployment_ready(live: dict[str, Any], phase: str = "ready") -> Readiness:
    """A Deployment, as `kubectl rollout status` reads it."""
    status = live.get("status") or {}
    spec = live.get("spec") or {}
    if not observed(live):
        return _waiting("not observed")
    for condition in status.get("conditions") or []:
        if condition.get("reason") == "ProgressDeadlineExceeded":
            return _failed(f"exceeded its progress deadline ({condition.get('message')})")
    want = spec.get("replicas", 1)
    if status.get("updatedReplicas", 0) < want or status.get("availableReplicas", 0) < want:
        return _waiting("replicas not available")
    if status.get("replicas", 0) > status.get("updatedReplicas", 0):
        return _waiting("old replicas terminating")
    return READY


def rollout_ready(live: dict[str, Any], phase: str = "ready") -> Readiness:
    """An Argo Rollout: its new version up (as the preview of a blue-green one), or with
    phase="promoted", active and healthy."""
    status = live.get("status") or {}
    if not observed(live):
        return _waiting("not observed")
    if status.get("phase") == "Degraded":
        return _failed(f"is degraded ({status.get('message', 'aborted')})")
    current = status.get("currentPodHash")
    blue_green = status.get("blueGreen") or {}
    if phase == "promoted":
        ok = blue_green.get("activeSelector") == current and status.get("phase") == "Healthy"
        return READY if ok else _waiting("not promoted")
    if status.get("phase") in ("Healthy", "Paused") and current in (
        blue_green.get("previewSelector"),
        blue_green.get("activeSelector"),
    ):
        return READY
    return _waiting("new version not up")


def stateful_set_ready(live: dict[str, Any], phase: str = "ready") -> Readiness:
    """A StatefulSet, as `kubectl rollout status` reads it: observed, every replica ready, and
    updated (up to the partition of a partitioned rolling update)."""
    status = live.get("status") or {}
    spec = live.get("spec") or {}
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return READY  # OnDelete: the controller replaces nothing by itself
    if not observed(live):
        return _waiting("not observed")
    want = spec.get("replicas", 1)
    if status.get("readyReplicas", 0) < want:
        return _waiting("replicas not ready")
    partition = (strategy.get("rollingUpdate") or {}).get("partition") or 0
    if partition:
        if status.get("updatedReplicas", 0) < want - partition:
            return _waiting("partitioned update not rolled out")
        return READY
    if status.get("updateRevision") != status.get("currentRevision"):
        return _waiting("update not rolled out")
    return READY


def daemon_set_ready(live: dict[str, Any], phase: str = "ready") -> Readiness:
    """A DaemonSet, as `kubectl rollout status` reads it: observed, its pod updated and
    available on every node that should run one."""
    status = live.get("status") or {}
    strategy = (live.get("spec") or {}).get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return READY
    if not observed(live):
        return _waiting("not observed")
    desired = status.get("desiredNumberScheduled", 0)
    if status.get("updatedNumberScheduled", 0) < desired:
        return _waiting("pods not updated on every node")
    if status.get("numberAvailable", 0) < desired:
        return _waiting("pods not available on every node")
    return READY


def pod_problem(pod: dict[str, Any]) -> tuple[str, str, str | None] | None:
    """(reason, message, container) for a pod that is not running ready, else None."""
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return "Unschedulable", str(condition.get("message") or ""), None
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting and waiting.get("reason"):
            return str(waiting["reason"]), str(waiting.get("message") or ""), container.get("name")
        if terminated:
            code = terminated.get("exitCode")
            if code in (0, None):
                continue  # done (a Job's container), not a problem
            said = f"exited with code {code}" + (
                f": {terminated['message']}" if terminated.get("message") else ""
            )
            return str(terminated.get("reason") or "Error"), said, container.get("name")
        if not container.get("ready", False):
            return "NotReady", "running but failing its readiness probe", container.get("name")
    if status.get("phase") not in (None, "Running", "Succeeded"):
        return str(status.get("phase")), str(status.get("message") or ""), None
    return None
