"""`autodevhub render --env prod`: every object the production shape needs, with its values."""

from __future__ import annotations

import pytest

from tests.helpers import REPO, documents, find, run_cli

MANAGED = "app.kubernetes.io/managed-by"


@pytest.fixture(scope="module")
def prod() -> list[dict]:
    code, out, err = run_cli("render", "--env", "prod", "--project-dir", str(REPO))
    assert code == 0, err
    return documents(out)


def _container(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]["containers"][0]


def test_namespace(prod: list[dict]) -> None:
    ns = find(prod, "Namespace", "autodevhub")
    assert ns["metadata"]["labels"]["name"] == "autodevhub"
    assert prod[0] is ns, "the Namespace is applied first"


def test_every_object_is_labelled(prod: list[dict]) -> None:
    for doc in prod:
        labels = doc["metadata"]["labels"]
        assert labels[MANAGED] == "autodevhub", doc["kind"]
        assert labels["app.kubernetes.io/name"] == "autodevhub"
        assert labels["app.kubernetes.io/environment"] == "prod"
        if doc["kind"] == "Job":  # a task: its pods are no Service's endpoints
            assert "app.kubernetes.io/component" not in labels
            assert labels["autodevhub.io/task-of"] == "backend"
        else:
            assert "app.kubernetes.io/component" in labels
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "autodevhub"


def test_frontend(prod: list[dict]) -> None:
    deploy = find(prod, "Deployment", "frontend")
    assert deploy["spec"]["replicas"] == 3
    c = _container(deploy)
    assert c["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "100m", "memory": "128Mi"},
    }
    assert c["ports"][0]["containerPort"] == 8080, "an unprivileged port"
    assert "sysctls" not in deploy["spec"]["template"]["spec"]["securityContext"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["port"] == "http"


def test_backend_is_a_blue_green_rollout(prod: list[dict]) -> None:
    assert not [d for d in prod if d["kind"] == "Deployment" and d["metadata"]["name"] == "backend"]
    rollout = find(prod, "Rollout", "backend")
    assert rollout["apiVersion"] == "argoproj.io/v1alpha1"
    assert rollout["spec"]["replicas"] == 2
    blue_green = rollout["spec"]["strategy"]["blueGreen"]
    assert blue_green == {
        "activeService": "backend",
        "previewService": "backend-preview",
        "autoPromotionEnabled": False,
        "scaleDownDelaySeconds": 30,
    }
    find(prod, "Service", "backend")
    find(prod, "Service", "backend-preview")
    c = _container(rollout)
    assert c["resources"] == {
        "requests": {"cpu": "200m", "memory": "256Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }
    assert c["ports"][0]["containerPort"] == 8000
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.parametrize(
    ("kind", "name"),
    [("Rollout", "backend"), ("Deployment", "worker"), ("Job", "backend-migrate-*")],
)
def test_secrets_are_read_only_files_never_env_vars(prod: list[dict], kind: str, name: str) -> None:
    """Each key of the component's secret_env is a file in /run/secrets named after the variable
    (where the service's settings read it), readable by the pod's group only."""
    import fnmatch

    (workload,) = [
        d for d in prod if d["kind"] == kind and fnmatch.fnmatch(d["metadata"]["name"], name)
    ]
    pod = workload["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert not [e for e in c["env"] if "valueFrom" in e], "no secret as an environment variable"
    assert {"name": "secrets", "mountPath": "/run/secrets", "readOnly": True} in c["volumeMounts"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "secrets"]
    assert volume["projected"]["defaultMode"] == 0o440
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]
    (source,) = volume["projected"]["sources"]
    files = {i["path"]: i["key"] for i in source["secret"]["items"]}
    assert source["secret"]["name"] == "autodevhub-secrets"
    expected = {"anthropic_api_key": "anthropic-api-key", "database_url": "database-url"}
    if kind != "Deployment":
        expected["api_keys"] = "api-keys"
    assert files == expected


def test_the_service_reads_the_mounted_files(tmp_path, monkeypatch) -> None:
    """The file names the manifests mount are the ones the service's settings read."""
    from service.settings import get_settings

    (tmp_path / "database_url").write_text("postgresql://app@db:5432/stories")
    (tmp_path / "anthropic_api_key").write_text("sk-ant-from-a-file")
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path))
    for name in ("DATABASE_URL", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    try:
        settings = get_settings()
        assert settings.database_url.get_secret_value() == "postgresql://app@db:5432/stories"
        assert settings.anthropic_api_key.get_secret_value() == "sk-ant-from-a-file"
    finally:
        get_settings.cache_clear()


def test_no_secret_values_anywhere(prod: list[dict]) -> None:
    assert not [d for d in prod if d["kind"] == "Secret"], "Secrets are referenced, never rendered"


@pytest.mark.parametrize("kind,name", [("Rollout", "backend"), ("Deployment", "frontend")])
def test_security_contexts(prod: list[dict], kind: str, name: str) -> None:
    pod = find(prod, kind, name)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] >= 1000
    assert pod["automountServiceAccountToken"] is False
    sc = pod["containers"][0]["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}


def test_disruption_budgets(prod: list[dict]) -> None:
    assert find(prod, "PodDisruptionBudget", "backend")["spec"]["minAvailable"] == 1
    assert find(prod, "PodDisruptionBudget", "frontend")["spec"]["minAvailable"] == 2


def test_hpa(prod: list[dict]) -> None:
    hpa = find(prod, "HorizontalPodAutoscaler", "backend")
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "name": "backend",
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 10)
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in spec["metrics"]}
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 70},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }


def test_ingress(prod: list[dict]) -> None:
    ing = find(prod, "Ingress", "autodevhub")
    notes = ing["metadata"]["annotations"]
    assert notes["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    assert notes["nginx.ingress.kubernetes.io/ssl-redirect"] == "true"
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["tls"] == [
        {"secretName": "autodevhub-tls", "hosts": ["autodevhub.example.com"]}
    ]
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == "autodevhub.example.com"
    routes = {
        p["path"]: (p["backend"]["service"]["name"], p["backend"]["service"]["port"]["number"])
        for p in rule["http"]["paths"]
    }
    assert routes == {"/api": ("backend", 8000), "/": ("frontend", 8080)}


def test_network_policies(prod: list[dict]) -> None:
    deny = find(prod, "NetworkPolicy", "default-deny-ingress")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    backend = find(prod, "NetworkPolicy", "backend")
    first = backend["spec"]["ingress"][0]
    sources = first["from"]
    assert sources[0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"
    }
    callers = [s["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for s in sources[1:]]
    assert callers == ["worker", "frontend"], "the components that depend on the backend"
    assert first["ports"] == [{"protocol": "TCP", "port": 8000}]
    frontend = find(prod, "NetworkPolicy", "frontend")
    assert frontend["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_service_monitor(prod: list[dict]) -> None:
    sm = find(prod, "ServiceMonitor", "backend")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s", "scheme": "http"}
    ]
    svc = find(prod, "Service", "backend-metrics")
    assert svc["spec"]["ports"][0]["name"] == "metrics"
    for key, value in sm["spec"]["selector"]["matchLabels"].items():
        assert svc["metadata"]["labels"][key] == value


def test_backup_cronjob(prod: list[dict]) -> None:
    cron = find(prod, "CronJob", "backup")
    assert cron["spec"]["schedule"] == "0 2 * * *"
    job_pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    c = job_pod["containers"][0]
    assert "pg_dump" in c["args"][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["RETENTION_DAYS"]["value"] == "30"
    # The database URL is a mounted file (tests/cli/test_backup_cronjob.py runs the script).
    assert "DATABASE_URL" not in env
    assert job_pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "backups"
    find(prod, "PersistentVolumeClaim", "backups")


def test_apply_order(prod: list[dict]) -> None:
    kinds = [d["kind"] for d in prod]
    assert kinds.index("Namespace") < kinds.index("Service") < kinds.index("Rollout")
    assert kinds.index("Rollout") < kinds.index("HorizontalPodAutoscaler") < kinds.index("Ingress")
    assert kinds[-2:] == ["ServiceMonitor", "PrometheusRule"]


def test_output_is_deterministic() -> None:
    first = run_cli("render", "--env", "prod", "--project-dir", str(REPO))[1]
    second = run_cli("render", "--env", "prod", "--project-dir", str(REPO), "--no-validate")[1]
    assert first == second


def test_staging_uses_a_deployment_and_its_own_issuer() -> None:
    code, out, err = run_cli("render", "--env", "staging", "--project-dir", str(REPO))
    assert code == 0, err
    docs = documents(out)
    find(docs, "Deployment", "backend")
    assert not [d for d in docs if d["kind"] == "Rollout"]
    hpa = find(docs, "HorizontalPodAutoscaler", "backend")
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    ing = find(docs, "Ingress", "autodevhub")
    assert ing["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-staging"


def test_migration_job_runs_before_the_workloads(prod: list[dict]) -> None:
    jobs = [d for d in prod if d["kind"] == "Job"]
    assert len(jobs) == 1
    job = jobs[0]
    assert job["metadata"]["name"].startswith("backend-migrate-")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python3", "-m", "service", "migrate"]
    rollout = find(prod, "Rollout", "backend")
    assert container["image"] == rollout["spec"]["template"]["spec"]["containers"][0]["image"]
    kinds = [d["kind"] for d in prod]
    assert kinds.index("Job") < kinds.index("Rollout")


def test_dashboard_and_alerts(prod: list[dict]) -> None:
    import json

    dashboard = find(prod, "ConfigMap", "autodevhub-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    model = json.loads(dashboard["data"]["autodevhub-prod.json"])
    titles = {p["title"] for p in model["panels"]}
    for wanted in (
        "Request rate by route",
        "Latency percentiles",
        "CPU by pod",
        "Memory by pod",
        "Network by pod",
        "Container restarts (1h)",
        "Stories generated per hour",
        "AI calls by outcome",
        "AI latency",
        "AI failures by reason",
        "Active clients (5 min)",
    ):
        assert wanted in titles
    rules = find(prod, "PrometheusRule", "autodevhub-alerts")
    alerts = {r["alert"]: r for g in rules["spec"]["groups"] for r in g["rules"]}
    assert {
        "ErrorBudgetBurnFast",
        "ErrorBudgetBurnSlow",
        "LatencyHigh",
        "StoryGenerationFailing",
        "PodRestarting",
    } <= set(alerts)
    # 99.9 %: a 0.1 % budget, 14.4x burn over 1 h.
    assert "> 0.0144 and" in alerts["ErrorBudgetBurnFast"]["expr"]
    assert "> 0.2" in alerts["LatencyHigh"]["expr"]
