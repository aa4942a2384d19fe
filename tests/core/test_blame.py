"""Which pods a failed wait blames: never one the applied spec has not been seen to make.

A rollback re-applies the previous release's spec; until the workload's controller has seen it
(observedGeneration behind generation), the current version is still the failed one, and the
pods the selector finds are the failed release's crashing pods. CI saw the rollback blame one
of them and report "the rollback failed too" while the release it went back to was starting.
"""

from __future__ import annotations

from typing import Any

import pytest

from autodevhub_cli.core.targets.kubernetes import KubernetesTarget

CRASHING = {
    "metadata": {"name": "worker-bad-1", "namespace": "ns", "labels": {"app": "worker"}},
    "status": {
        "phase": "Running",
        "containerStatuses": [
            {
                "name": "worker",
                "ready": False,
                "restartCount": 2,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
            }
        ],
    },
}


class Kube:
    """The API as the failed release left it: one crash-looping pod under the selector."""

    def has(self, api_version: str, kind: str) -> bool:
        return True

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None, selector: str | None = None
    ) -> list[dict[str, Any]]:
        return [CRASHING] if kind == "Pod" else []

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return []

    def pod_log(self, namespace: str, name: str, container: str | None, tail: int) -> str:
        return ""


def workload(kind: str, generation: int, seen: object) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {"name": "worker", "namespace": "ns", "generation": generation},
        "spec": {"selector": {"matchLabels": {"app": "worker"}}},
        "status": {"observedGeneration": seen},
    }


@pytest.mark.parametrize(
    ("kind", "behind", "caught_up"),
    [
        ("Deployment", 4, 5),
        ("StatefulSet", 4, 5),
        ("Rollout", "4", "5"),  # Argo Rollouts writes observedGeneration as a string
    ],
)
def test_no_pod_is_blamed_before_the_controller_has_seen_the_spec(
    kind: str, behind: object, caught_up: object
) -> None:
    target = KubernetesTarget.__new__(KubernetesTarget)
    target._kube = Kube()  # type: ignore[assignment]
    assert target._fatal_pods(workload(kind, 5, behind)) == ""
    blamed = target._fatal_pods(workload(kind, 5, caught_up))
    assert blamed.startswith("pod worker-bad-1: CrashLoopBackOff"), blamed


@pytest.mark.parametrize(
    ("kind", "seen", "controller"),
    [
        ("Deployment", 4, "kube-controller-manager"),
        ("DaemonSet", 4, "kube-controller-manager"),
        ("Rollout", "4", "the Argo Rollouts controller"),
    ],
)
def test_a_spec_its_controller_never_saw_is_diagnosed_as_such(
    kind: str, seen: object, controller: str
) -> None:
    """At the deadline, a workload whose controller never caught up (the Argo Rollouts
    controller not running, say) is named as such, not blamed on an old pod."""
    target = KubernetesTarget.__new__(KubernetesTarget)
    target._kube = Kube()  # type: ignore[assignment]
    said = target.diagnose(workload(kind, 5, seen))
    assert said == (
        f"its controller has not seen the applied spec (generation 5, observed {seen}): "
        f"check that {controller} runs in the cluster"
    )
