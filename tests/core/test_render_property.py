"""Property: any valid environment renders to output that passes schema validation."""

from __future__ import annotations

import os
import re

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autodevhub_cli.core.config import load_environment
from autodevhub_cli.core.project import find_project
from autodevhub_cli.core.render import render
from autodevhub_cli.core.validate import validate
from tests.helpers import REPO

label = st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
host = st.builds(lambda a, b: f"{a}.{b}.example", label, label)
cpu = st.integers(min_value=1, max_value=4000)
memory = st.integers(min_value=16, max_value=8192)


@st.composite
def overrides(draw: st.DrawFn) -> list[str]:
    sets = []
    for comp in ("backend", "worker", "frontend"):
        req_cpu = draw(cpu)
        req_mem = draw(memory)
        sets += [
            f"components.{comp}.replicas={draw(st.integers(0, 50))}",
            f"components.{comp}.resources.requests.cpu={req_cpu}m",
            f"components.{comp}.resources.limits.cpu={req_cpu + draw(st.integers(0, 4000))}m",
            f"components.{comp}.resources.requests.memory={req_mem}Mi",
            f"components.{comp}.resources.limits.memory={req_mem + draw(memory)}Mi",
            f"components.{comp}.ports.http={draw(st.integers(1, 65535))}",
            f"components.{comp}.disruption_budget.enabled={draw(st.booleans())}",
            f"components.{comp}.image.tag=v{draw(st.integers(0, 999))}",
        ]
    low = draw(st.integers(1, 20))
    ingress = draw(st.booleans())
    sets += [
        f"components.backend.autoscaling.enabled={draw(st.booleans())}",
        f"components.backend.autoscaling.min_replicas={low}",
        f"components.backend.autoscaling.max_replicas={low + draw(st.integers(0, 30))}",
        f"components.backend.autoscaling.cpu_utilization={draw(st.integers(1, 100))}",
        f"components.backend.probes.readiness.path=/{draw(label)}",
        f"components.backend.strategy={draw(st.sampled_from(['rolling', 'blue-green']))}",
        f"namespace={draw(label)}",
        f"ingress.enabled={ingress}",
        # Without an Ingress, the smoke checks reach the components through port-forward.
        f"smoke.port_forward={not ingress}",
        f"ingress.tls.enabled={draw(st.booleans())}",
        f"ingress.hosts={yaml.safe_dump(draw(st.lists(host, min_size=1, max_size=3)), default_flow_style=True).strip()}",
        f"network_policies.enabled={draw(st.booleans())}",
        f"monitoring.enabled={draw(st.booleans())}",
        f"monitoring.interval={draw(st.integers(5, 300))}s",
        f"backups.enabled={draw(st.booleans())}",
        f"backups.retention_days={draw(st.integers(1, 365))}",
        f"components.frontend.expose.compose.http={draw(st.integers(1024, 65535))}",
        f"components.backend.expose.compose.http={draw(st.integers(1024, 65535))}",
        f"kubernetes.version=1.{draw(st.integers(30, 37))}",
    ]
    return sets


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    env=st.sampled_from(["dev", "staging", "prod"]),
    target=st.sampled_from(["compose", "kubernetes"]),
    sets=overrides(),
)
def test_valid_environments_render_to_valid_output(env: str, target: str, sets: list[str]) -> None:
    os.environ["AUTODEVHUB_NO_CACHE"] = "1"  # run the real validators every time
    if env == "dev":  # on Compose a component publishing a host port runs one container
        sets = [
            re.sub(r"^(components\.(backend|frontend)\.replicas)=\d+$", r"\1=1", s) for s in sets
        ]
    try:
        project = find_project(REPO)
        environment = load_environment(project, env, sets, environ={})
        result = render(project, environment, target)
        report = validate(result, environment.kubernetes.version)
        assert report.checked
        assert report.cached == 0
        assert result.to_yaml() == render(project, environment, target).to_yaml()
    finally:
        del os.environ["AUTODEVHUB_NO_CACHE"]
