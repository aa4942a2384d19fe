"""Real RBAC: a deploy under exactly the permissions `doctor` derives and checks.

Why kwok nodes are enough here: RBAC is decided by the API server, request by request, for the
deployer's identity (a ServiceAccount token from TokenRequest); the tests assert doctor's
verdict, the 403 on the release history, that nothing is applied, and the exit codes and
messages. The pods of the prod deploys are created by the Job, ReplicaSet and Argo Rollouts
controllers under their own identities, and no container makes a request as the deployer, so
whether one runs changes no permission checked here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from autodevhub_cli.core.adapters.kube import ObjectRef
from tests.deploy.kube_cluster import Cluster

pytestmark = [pytest.mark.k8s, pytest.mark.browser]


def _least_privilege(cluster: Cluster, env: str) -> tuple[list[dict[str, Any]], Any]:
    """The Role and ClusterRole rules for what doctor says a deploy of `env` needs."""
    from autodevhub_cli.core.config import load_environment
    from autodevhub_cli.core.project import find_project
    from autodevhub_cli.core.render import render
    from autodevhub_cli.core.secrets import referenced_keys
    from autodevhub_cli.core.targets.access import required_permissions

    project = find_project(cluster.root)
    environment = load_environment(project, env, [f"namespace={cluster.ns}"])
    docs = [m.document for m in render(project, environment).manifests]
    needed = required_permissions(
        cluster.kube, docs, cluster.ns, sorted(referenced_keys(environment))
    )
    rules: dict[tuple[bool, str, str, str], list[str]] = {}
    for p in needed:
        rules.setdefault((bool(p.namespace), p.group, p.resource, p.name), []).append(p.verb)
    out = []
    for (namespaced, group, resource, name), verbs in rules.items():
        rule: dict[str, Any] = {"apiGroups": [group], "resources": [resource], "verbs": verbs}
        if name:
            rule["resourceNames"] = [name]
        out.append({"namespaced": namespaced, "rule": rule})
    return out, needed


def _service_account_kubeconfig(cluster: Cluster, path: Path, account: str) -> Path:
    """A kubeconfig that authenticates as a ServiceAccount with a bound token."""
    import yaml
    from kubernetes import client

    core = client.CoreV1Api(cluster.kube.api_client)
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    token = core.create_namespaced_service_account_token(account, cluster.ns, request)
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    server = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": server["cluster"]}],
        "users": [{"name": account, "user": {"token": token.status.token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": account}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _deployer(cluster: Cluster, tmp_path: Path) -> tuple[list[dict[str, Any]], Any, Any]:
    """A namespace with a ServiceAccount `deployer` the environment's commands run as (the
    cluster's env points at its kubeconfig), the Secret prod references, and a `grant(rules)`
    that gives the account exactly those rules. Returns (prod's rules, what doctor derived,
    grant)."""
    ns, account = cluster.ns, "deployer"
    cluster.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    cluster.kube.create(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": account, "namespace": ns},
        }
    )
    cluster.kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "autodevhub-secrets", "namespace": ns},
            "stringData": {"database-url": "x", "anthropic-api-key": "x", "api-keys": "x"},
        }
    )
    rules, needed = _least_privilege(cluster, "prod")
    subject = [{"kind": "ServiceAccount", "name": account, "namespace": ns}]

    def grant(keep: list[dict[str, Any]]) -> None:
        for kind, scope in (("Role", ns), ("ClusterRole", "")):
            name = f"{ns}-deployer"
            namespaced = kind == "Role"
            rbac = "rbac.authorization.k8s.io/v1"
            for obj_kind in (kind, f"{kind}Binding"):
                cluster.kube.delete(ObjectRef(rbac, obj_kind, scope, name))
            cluster.kube.create(
                {
                    "apiVersion": rbac,
                    "kind": kind,
                    "metadata": {"name": name, **({"namespace": scope} if scope else {})},
                    "rules": [r["rule"] for r in keep if r["namespaced"] == namespaced],
                }
            )
            cluster.kube.create(
                {
                    "apiVersion": rbac,
                    "kind": f"{kind}Binding",
                    "metadata": {"name": name, **({"namespace": scope} if scope else {})},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": kind,
                        "name": name,
                    },
                    "subjects": subject,
                }
            )

    grant(rules)
    kubeconfig = _service_account_kubeconfig(cluster, tmp_path / "sa.yaml", account)
    cluster.env["AUTODEVHUB__KUBERNETES__KUBECONFIG"] = str(kubeconfig)
    return rules, needed, grant


def _doctor(cluster: Cluster) -> dict[str, Any]:
    _, out, _ = cluster.cli("doctor", "--env", "prod", "-o", "json")
    return {f["check"]: f for f in json.loads(out)["environments"]["prod"]}


def _drop_cluster_role(cluster: Cluster) -> None:
    for kind in ("ClusterRole", "ClusterRoleBinding"):
        name = f"{cluster.ns}-deployer"
        cluster.kube.delete(ObjectRef("rbac.authorization.k8s.io/v1", kind, "", name))


def test_a_deploy_runs_with_exactly_the_permissions_doctor_lists(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Real RBAC: a ServiceAccount granted what doctor checks, and nothing else, deploys prod
    (blue-green, promote) and doctor passes its permission check; take one grant away and
    doctor names exactly that one."""
    ns = cluster.ns
    rules, needed, grant = _deployer(cluster, tmp_path)
    found = cluster.wait(
        "RBAC to apply", lambda: _doctor(cluster)["Permissions"]["ok"] and _doctor(cluster)
    )
    assert f"{len(needed)} permissions allowed in namespace {ns}" in found["Permissions"]["detail"]
    assert found["Secret autodevhub-secrets"]["ok"]
    cluster.record_build("prod", "c-0000000000000151")
    code, _, err = cluster.deploy("prod", "--promote")
    assert code == 0, err
    cluster.record_build("prod", "c-0000000000000152")
    code, _, err = cluster.deploy("prod", "--promote")
    assert code == 0, err
    # Without the status subresource, promote and abort cannot work: doctor says so.
    grant([r for r in rules if r["rule"]["resources"] != ["rollouts/status"]])
    found = cluster.wait(
        "RBAC to apply",
        lambda: (not _doctor(cluster)["Permissions"]["ok"]) and _doctor(cluster),
    )
    detail = found["Permissions"]["detail"]
    assert detail == f"Not allowed in namespace {ns}: patch rollouts/status.argoproj.io.", detail
    _drop_cluster_role(cluster)


def test_without_write_access_to_the_history_nothing_is_applied(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The release history is Secrets in the namespace: an identity that may read them but not
    create them is stopped before anything is applied, told which permission is missing, and
    doctor names it."""
    ns = cluster.ns
    rules, _, grant = _deployer(cluster, tmp_path)
    cut = []
    for r in rules:
        rule = r["rule"]
        if rule["resources"] == ["secrets"] and not rule.get("resourceNames"):
            rule = {**rule, "verbs": [v for v in rule["verbs"] if v not in ("create", "update")]}
        cut.append({**r, "rule": rule})
    grant(cut)
    found = cluster.wait(
        "RBAC to apply",
        lambda: (not _doctor(cluster)["Permissions"]["ok"]) and _doctor(cluster),
    )
    detail = found["Permissions"]["detail"]
    assert detail == f"Not allowed in namespace {ns}: create secrets, update secrets.", detail
    cluster.record_build("prod", "c-0000000000000153")
    code, _, err = cluster.deploy("prod")
    message = " ".join(err.split())
    assert code == 1, err
    assert "Cannot write the release history" in message and "403" in message, message
    assert f"create, update and delete on secrets in namespace '{ns}'" in message, message
    assert "nothing was applied" in message, message
    assert "Traceback" not in err and "Unexpected error" not in err
    for kind, name in (("Rollout", "backend"), ("Deployment", "frontend"), ("Service", "backend")):
        assert cluster.obj(kind, name) is None, f"{kind} {name} was applied"
    _drop_cluster_role(cluster)


def test_doctor_asks_for_namespace_create_when_the_namespace_is_missing(
    cluster: Cluster, tmp_path: Path
) -> None:
    """RBAC cannot limit `create` to one name: for a namespace that does not exist yet, doctor
    checks cluster-wide `create namespaces`, and names it for an identity without it."""
    home = cluster.ns  # where the ServiceAccount lives; the environment's namespace is another
    cluster.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": home}})
    cluster.kube.create(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "nobody", "namespace": home},
        }
    )
    kubeconfig = _service_account_kubeconfig(cluster, tmp_path / "sa.yaml", "nobody")
    cluster.env["AUTODEVHUB__KUBERNETES__KUBECONFIG"] = str(kubeconfig)
    missing = f"{home}-new"
    cluster.env["AUTODEVHUB__NAMESPACE"] = missing
    code, out, _ = cluster.cli("doctor", "--env", "staging", "-o", "json")
    assert code == 1
    found = {f["check"]: f for f in json.loads(out)["environments"]["staging"]}
    detail = found["Permissions"]["detail"]
    assert detail.startswith(f"Not allowed in namespace {missing}: get namespaces {missing}, ")
    assert f"patch namespaces {missing}," in detail
    assert "create namespaces," in detail, "cluster-wide: a name cannot limit create"
    assert "ClusterRole" in found["Permissions"]["fix"]
