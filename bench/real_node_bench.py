"""Benchmark: deploy-to-serving on the local cluster's real node, autodevhub beside Helm.

Usage: python bench/real_node_bench.py [--rounds 3] [--envs staging,prod] [--helm PATH]
  (needs `bash scripts/local-cluster.sh up` with its real node, the registry on 127.0.0.1:5000,
  the stand-in base images and PostgreSQL of scripts/ci/provision.sh)

The images are built and pushed once (`autodevhub build --push -o json`); every deploy below is
pinned to that build (`--images`), so the figures are deploy-to-serving, not build. Each round,
for each environment, a fresh namespace on the real node for each tool, one after the other (the
node's 2 CPUs hold one environment's requests), its pods pulled and run for real, with a
PostgreSQL database of its own on the host (reached from the pods at 10.244.0.1), the same
Secret and a hostPath PersistentVolume for the backups claim; the model is a stand-in of
the Anthropic API on the host.

- autodevhub: `deploy --env ENV --images FILE` (prod: `--promote`), timed as a fresh process to
  its exit, which comes after the migrate Job, every workload ready and the project's smoke
  checks passed through port-forward (for prod: the preview checked, promoted, checked again).
  First (an empty namespace), no-op (the same again), one change (a backend env value).
- Helm: a chart holding what `autodevhub render` prints for the same environment and build (the
  Namespace left out; the task Jobs made `pre-install,pre-upgrade` hooks, as Helm charts run
  migrations), `helm upgrade --install --wait --wait-for-jobs`, to its exit. Helm waits for
  Deployments, Jobs and bound claims; it does not know Argo Rollouts (prod's backend), so its
  prod figure ends before the new backend version serves, and it runs no check.

After each command the frontend page and the backend's /readyz are fetched through their
Services (kube-proxy) every 50 ms until both answer 200: that lag is printed beside each figure
(Helm's --wait can return before a Service answers). Medians over --rounds; every figure is printed.
Helm is built from the Go module proxy into $AUTODEVHUB_CI_STATE/bench (once) unless --helm
names a binary.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets as tokens
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_common import base_image_env, copy_project  # noqa: E402
from state_bench import helm_binary  # noqa: E402

GATEWAY = "10.244.0.1"  # the real node's bridge: the host, as the pods see it
KUBECONFIG = Path(
    os.environ.get("KUBECONFIG", "/var/lib/autodevhub-ci/cluster/run/autodevhub/kubeconfig")
)
REAL_NODE = {
    "scheduler.alpha.kubernetes.io/node-selector": "autodevhub.io/node=real",
    "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps(
        [{"key": "autodevhub.io/real-node", "operator": "Exists", "effect": "NoSchedule"}]
    ),
}
CLI = str(Path(sysconfig.get_path("scripts")) / "autodevhub")


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    run(cmd, env, cwd)
    return time.perf_counter() - started


class Namespace:
    """A real-node namespace with its own database, Secret and backups volume."""

    def __init__(self, kube: Any, work: Path, values: dict[str, str]) -> None:
        from autodevhub_cli.core.adapters.kube import ObjectRef

        self.kube, self.name = kube, f"bench-real-{uuid.uuid4().hex[:6]}"
        self.role, password = f"bench_{uuid.uuid4().hex[:8]}", tokens.token_urlsafe(18)
        psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc"]
        run([*psql, f"CREATE ROLE {self.role} LOGIN PASSWORD '{password}'"])
        run([*psql, f"CREATE DATABASE {self.role} OWNER {self.role}"])
        self.secrets = {
            **values,
            "database-url": f"postgresql+psycopg://{self.role}:{password}@{GATEWAY}:5432/{self.role}",
        }
        kube.create(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": self.name, "annotations": REAL_NODE},
            }
        )
        backups = work / f"backups-{self.name}"
        backups.mkdir()
        self.volume = ObjectRef("v1", "PersistentVolume", "", f"{self.name}-backups")
        from tests.deploy.local_cluster import host_path_volume

        kube.create(host_path_volume(self.volume.name, backups, self.name, "backups", "100Gi"))

    def delete(self) -> None:
        from autodevhub_cli.core.adapters.kube import ObjectRef

        namespace = ObjectRef("v1", "Namespace", "", self.name)
        self.kube.delete(namespace)
        # Gone, its pods with it: the node's CPU is for the next namespace's pods.
        deadline = time.monotonic() + 180
        while self.kube.get(namespace) is not None and time.monotonic() < deadline:
            time.sleep(1)
        self.kube.delete(self.volume)
        psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc"]
        subprocess.run([*psql, f"DROP DATABASE IF EXISTS {self.role} WITH (FORCE)"], check=False)
        subprocess.run([*psql, f"DROP ROLE IF EXISTS {self.role}"], check=False)


def serves(kube: Any, ns: str) -> float:
    """Seconds from now until the page and the backend's readiness both answer 200 through
    their Services (kube-proxy), asked every 50 ms for at most 60 s."""
    import httpx

    from autodevhub_cli.core.adapters.kube import ObjectRef

    started = time.perf_counter()
    for name, path in (("frontend", "/"), ("backend", "/readyz")):
        service = kube.get(ObjectRef("v1", "Service", ns, name)) or {}
        url = f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}{path}"
        while True:
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - started > 60:
                sys.exit(f"{ns}: {url} did not answer 200 within 60 s of the deploy's end")
            time.sleep(0.05)
    return time.perf_counter() - started


def helm_chart(work: Path, manifests: str, name: str) -> Path:
    """A chart whose one template prints `manifests` (a file of the chart, so Helm's template
    engine never reads the `{{ }}` inside them), the task Jobs made pre-install/upgrade hooks."""
    import yaml

    chart = work / name
    shutil.rmtree(chart, ignore_errors=True)
    (chart / "templates").mkdir(parents=True)
    (chart / "files").mkdir()
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: 0.1.0\n")
    docs = []
    for doc in yaml.safe_load_all(manifests):
        if not doc or doc.get("kind") == "Namespace":
            continue
        labels = doc.get("metadata", {}).get("labels") or {}
        if doc.get("kind") == "Job" and "autodevhub.io/step" in labels:
            doc["metadata"].setdefault("annotations", {}).update(
                {
                    "helm.sh/hook": "pre-install,pre-upgrade",
                    "helm.sh/hook-delete-policy": "before-hook-creation",
                }
            )
        docs.append(doc)
    (chart / "files" / "all.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    (chart / "templates" / "all.yaml").write_text('{{ .Files.Get "files/all.yaml" }}\n')
    return chart


def one_round(
    kube: Any, helm: str, env_name: str, project: Path, images: Path, base: dict[str, str]
) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="real-bench-"))
    values = {
        "anthropic-api-key": "sk-ant-" + tokens.token_hex(24),
        "api-keys": base["SMOKE_API_KEY"],
    }
    figures: dict[str, float] = {}
    ours = Namespace(kube, work, values)
    try:
        env = {**base, "AUTODEVHUB__NAMESPACE": ours.name}
        secrets = work / "secrets.env"
        secrets.write_text("".join(f"{k}={v}\n" for k, v in ours.secrets.items()))
        run([CLI, "secrets", "set", "--env", env_name, "--from-file", str(secrets)], env, project)
        deploy = [CLI, "deploy", "--env", env_name, "--images", str(images), "--timeout", "300"]
        if env_name == "prod":
            deploy.append("--promote")
        for case, more in (
            ("first", []),
            ("no-op", []),
            ("one change", ["--set", "components.backend.env.BENCH_MARK=changed"]),
        ):
            figures[f"autodevhub {case}"] = timed([*deploy, *more], env, project)
            figures[f"autodevhub {case} lag"] = serves(kube, ours.name)
    finally:
        ours.delete()
    # One namespace at a time: the node's two CPUs hold one environment's requests.
    theirs = Namespace(kube, work, values)
    try:
        helm_env = {**base, "AUTODEVHUB__NAMESPACE": theirs.name}
        literal = [f"--from-literal={k}={v}" for k, v in theirs.secrets.items()]
        secret = ["kubectl", "-n", theirs.name, "create", "secret", "generic", "autodevhub-secrets"]
        run([*secret, *literal], helm_env)
        render = [CLI, "render", "--env", env_name, "--images", str(images)]
        upgrade = [
            helm,
            "upgrade",
            "--install",
            "app",
            "-n",
            theirs.name,
            "--wait",
            "--wait-for-jobs",
            "--timeout",
            "5m",
        ]
        for case, more in (
            ("first", []),
            ("no-op", []),
            ("one change", ["--set", "components.backend.env.BENCH_MARK=changed"]),
        ):
            chart = helm_chart(work, run([*render, *more], helm_env, project), "app")
            figures[f"helm {case}"] = timed([*upgrade, str(chart)], helm_env, project)
            figures[f"helm {case} lag"] = serves(kube, theirs.name)
    finally:
        theirs.delete()
        shutil.rmtree(work, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--envs", default="staging,prod")
    parser.add_argument("--helm", help="a helm binary (default: built once from Go modules)")
    options = parser.parse_args()

    from autodevhub_cli.core.adapters.kube import Kube
    from tests.service.fake_anthropic import FakeMessagesAPI

    helm = helm_binary(options.helm)
    print(run([helm, "version", "--short"]).strip())
    kube = Kube.connect(kubeconfig=str(KUBECONFIG))
    model = FakeMessagesAPI(host=GATEWAY).start()
    project = copy_project("real-bench-project-")
    base = {
        **os.environ,
        **base_image_env(),
        "KUBECONFIG": str(KUBECONFIG),
        "AUTODEVHUB__KUBERNETES__KUBECONFIG": str(KUBECONFIG),
        "AUTODEVHUB__REGISTRY__URL": "127.0.0.1:5000/real-bench",
        "AUTODEVHUB__SMOKE__PORT_FORWARD": "true",
        "AUTODEVHUB__COMPONENTS__WORKER__ENV__ANTHROPIC_BASE_URL": model.base_url,
        "SMOKE_API_KEY": "key-" + tokens.token_hex(16),
        "HELM_CACHE_HOME": str(project / ".helm-cache"),
        "HELM_CONFIG_HOME": str(project / ".helm-config"),
        "HELM_DATA_HOME": str(project / ".helm-data"),
    }
    try:
        for env_name in options.envs.split(","):
            images = project / f"images-{env_name}.json"
            images.write_text(
                run([CLI, "build", "--env", env_name, "--push", "-o", "json"], base, project)
            )
            rounds = []
            for n in range(options.rounds):
                figures = one_round(kube, helm, env_name, project, images, base)
                print(
                    f"{env_name} round {n + 1}: "
                    + json.dumps({k: round(v, 2) for k, v in figures.items()})
                )
                rounds.append(figures)
            print(f"\n{env_name}, medians of {options.rounds} rounds (seconds):")
            for case in ("first", "no-op", "one change"):
                line = f"  {case:11}"
                for tool in ("autodevhub", "helm"):
                    done = statistics.median(r[f"{tool} {case}"] for r in rounds)
                    lag = statistics.median(r[f"{tool} {case} lag"] for r in rounds)
                    line += f"   {tool} {done:6.2f} (+{lag:.2f} to the first answer)"
                print(line)
            print()
    finally:
        model.stop()
        shutil.rmtree(project, ignore_errors=True)


if __name__ == "__main__":
    main()
