"""`autodevhub doctor`: each gap found, with how to fix it, against the KubeFake API server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import copy_project, run_cli
from tests.kubefake.server import KubeFake

pytestmark = pytest.mark.k8s


def _doctor(root: Path, kubeconfig: Path) -> tuple[int, dict, str]:
    code, out, err = run_cli(
        "doctor", "--env", "prod", "--kubeconfig", str(kubeconfig), "-o", "json", "-C", str(root)
    )
    return code, json.loads(out), err


def _findings(report: dict) -> dict[str, dict]:
    return {f["check"]: f for f in report["environments"]["prod"]}


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    # With service/: doctor reads the Dockerfiles for the base images they start from.
    return copy_project(tmp_path, with_service=True)


def test_doctor_finds_each_gap_and_how_to_fix_it(root: Path, tmp_path: Path) -> None:
    with KubeFake(with_crds=False, auto_create_namespaces=True) as fake:
        fake.deny("patch", "deployments", group="apps")
        code, report, err = _doctor(root, fake.kubeconfig(tmp_path / "kc"))
        assert code == 1
        found = _findings(report)
        assert found["Kube context"]["ok"]
        assert not found["Permissions"]["ok"]
        assert "patch deployments.apps" in found["Permissions"]["detail"]
        assert "RoleBinding" in found["Permissions"]["fix"]
        secret = found["Secret autodevhub-secrets"]
        assert not secret["ok"] and "does not exist" in secret["detail"]
        assert "anthropic-api-key" in secret["fix"] and "database-url" in secret["fix"]
        assert not found["CRD Rollout"]["ok"] and "Argo Rollouts" in found["CRD Rollout"]["fix"]
        assert not found["CRD ServiceMonitor"]["ok"]
        assert "check(s) failed" in err


def test_doctor_passes_the_cluster_checks_when_all_is_there(root: Path, tmp_path: Path) -> None:
    with KubeFake(auto_create_namespaces=True) as fake:
        fake.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "autodevhub-secrets", "namespace": "autodevhub"},
                "data": {
                    "database-url": "cG9zdGdyZXM=",
                    "anthropic-api-key": "c2stYW50",
                    "api-keys": "a2V5",
                },
            }
        )
        _, report, _ = _doctor(root, fake.kubeconfig(tmp_path / "kc"))
        found = _findings(report)
        for check in (
            "Kube context",
            "Permissions",
            "Secret autodevhub-secrets",
            "CRD Rollout",
            "CRD ServiceMonitor",
            "CRD PrometheusRule",
        ):
            assert found[check]["ok"], found[check]
        secret_detail = found["Secret autodevhub-secrets"]["detail"]
        assert "cG9zdGdyZXM" not in json.dumps(report), "secret values never appear"
        assert "anthropic-api-key" in secret_detail


@pytest.mark.docker
def test_doctor_for_compose_on_the_real_engine(root: Path) -> None:
    from tests.images.conftest import BASE_IMAGES, REGISTRY, _engine_problem

    problem = _engine_problem()
    if problem:
        pytest.skip(problem)
    env = {f"AUTODEVHUB__BUILD__ARGS__{k}_IMAGE": v for k, v in BASE_IMAGES.items()}
    env["AUTODEVHUB__REGISTRY__URL"] = REGISTRY
    code, out, err = run_cli("doctor", "-C", str(root), env=env)
    assert code == 0, out + err
    assert "dev: 6 checks, 0 failed" in out
    env["AUTODEVHUB__BUILD__ARGS__NODE_IMAGE"] = "autodevhub-ci/missing-node:1"
    code, out, err = run_cli("doctor", "-C", str(root), env=env)
    assert code == 1
    assert (
        "FAIL Base image (build.args.NODE_IMAGE): autodevhub-ci/missing-node:1 is not on the "
        "engine." in out
    )
    assert "fix: docker pull autodevhub-ci/missing-node:1" in out
