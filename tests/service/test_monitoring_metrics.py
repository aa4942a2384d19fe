"""Every metric the rendered Grafana dashboard and alert rules use exists: in a real scrape of
the service's /metrics, or among the standard kube-state-metrics / cAdvisor / Prometheus names.
"""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient

from autodevhub_cli.core.config import load_environment
from autodevhub_cli.core.project import find_project
from autodevhub_cli.core.render import render
from tests.helpers import REPO

# Standard names from the cluster's exporters, not the service.
EXTERNAL = {
    "up",  # Prometheus, per scrape target
    "container_cpu_usage_seconds_total",  # cAdvisor
    "container_memory_working_set_bytes",
    "container_network_receive_bytes_total",
    "container_network_transmit_bytes_total",
    "kube_pod_container_status_restarts_total",  # kube-state-metrics
}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}


def promql_metrics(expr: str) -> set[str]:
    """Metric names a PromQL expression selects."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", text):
        if match.group(1) not in KEYWORDS:
            names.add(match.group(1))
    return names


def rendered_expressions() -> dict[str, str]:
    project = find_project(REPO)
    docs = render(project, load_environment(project, "prod", environ={})).manifests
    found = {}
    for manifest in docs:
        doc = manifest.document
        if doc["kind"] == "PrometheusRule":
            for group in doc["spec"]["groups"]:
                for rule in group["rules"]:
                    found[f"alert {rule['alert']}"] = rule["expr"]
        if doc["kind"] == "ConfigMap" and "grafana_dashboard" in doc["metadata"]["labels"]:
            for text in doc["data"].values():
                for panel in json.loads(text)["panels"]:
                    for target in panel.get("targets", []):
                        found[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    return found


def scraped_names(client: TestClient) -> set[str]:
    client.get("/healthz")
    client.post("/api/stories", json={"feature": "Export invoices as PDF"})
    text = client.get("/metrics").text
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            if kind == "counter" and not name.endswith("_total"):
                names.add(f"{name}_total")
    return names


def test_parser_reads_metric_names() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le) (rate(a_bucket{x="y", z=~"5.."}[5m]))) '
        '/ sum(rate(b_total{job="j"}[1h])) > 0.5 and absent(up{job="k"} == 1)'
    )
    assert promql_metrics(expr) == {"a_bucket", "b_total", "up"}


def test_dashboard_and_alert_metrics_exist(client: TestClient) -> None:
    expressions = rendered_expressions()
    assert len([k for k in expressions if k.startswith("alert")]) >= 6
    assert len([k for k in expressions if k.startswith("panel")]) >= 15
    available = scraped_names(client) | EXTERNAL
    missing = {
        where: sorted(promql_metrics(expr) - available)
        for where, expr in expressions.items()
        if promql_metrics(expr) - available
    }
    assert not missing, f"metrics used but not exposed: {missing}"
