"""Readiness read the way `kubectl rollout status` reads it, on live objects shaped as a real
API server returns them while a controller has not caught up yet (a window too short to hit
reliably on the real cluster, so the shapes are written out here)."""

from __future__ import annotations

from typing import Any

from autodevhub_cli.core.targets.readiness import State, readiness


def _deployment(generation: int, observed: int, conditions: list[dict[str, Any]]) -> dict:
    return {
        "kind": "Deployment",
        "metadata": {"name": "backend", "generation": generation},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": observed,
            "replicas": 2,
            "updatedReplicas": 2,
            "availableReplicas": 2,
            "conditions": conditions,
        },
    }


DEADLINE = {
    "type": "Progressing",
    "status": "False",
    "reason": "ProgressDeadlineExceeded",
    "message": 'ReplicaSet "backend-7d9f" has timed out progressing.',
}


def test_a_stale_progress_deadline_does_not_fail_the_next_generation() -> None:
    # The fixed release was just applied (generation 4); the controller still shows the
    # failed generation 3's condition.
    verdict = readiness(_deployment(4, 3, [DEADLINE]))
    assert verdict.state is State.WAITING and verdict.reason == "not observed"


def test_an_observed_progress_deadline_fails() -> None:
    verdict = readiness(_deployment(4, 4, [DEADLINE]))
    assert verdict.state is State.FAILED
    assert "exceeded its progress deadline" in verdict.reason and "timed out" in verdict.reason


def test_a_rollout_waits_until_argo_observed_its_generation() -> None:
    rollout = {
        "kind": "Rollout",
        "metadata": {"generation": 7},
        # Argo Rollouts writes observedGeneration as a string.
        "status": {"observedGeneration": "6", "phase": "Degraded", "message": "RolloutAborted"},
    }
    assert readiness(rollout).state is State.WAITING
    rollout["status"]["observedGeneration"] = "7"
    assert readiness(rollout).state is State.FAILED
