"""Benchmark: what keeping the release history and the deploy lock in the target costs, side by
side with Helm, which keeps its releases the same way (one Secret per revision in the release's
namespace, gzip'd), and with the bare API calls underneath.

Usage: python bench/state_bench.py [--releases 10] [--runs 7] [--helm PATH]

Kubernetes (the local control plane, scripts/local-cluster.sh): a namespace holding N releases of
this project's prod environment (its real rendered manifests and values), written by
autodevhub's Secret driver, and N revisions of a Helm release whose chart renders the same
manifests (as one ConfigMap each, so the kwok cluster need run nothing). Docker: N releases of
the dev environment on the engine. Reported, median of --runs:
- reading the history in a fresh process: `autodevhub history --env prod --output json` against
  `helm history --output json`, and the bare list call each makes (`kubectl get secrets -l`,
  `docker volume ls --filter`);
- what a deploy adds, in the process: the history read, the first record, its update before
  applying and the final one (one list, one create, two updates), and taking and giving back the
  lock (the Lease; the lock container on the engine).
Helm is built from the Go module proxy into $AUTODEVHUB_CI_STATE/bench (once) unless --helm
names a binary.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
HELM_VERSION = "v3.21.4"


def median_of(runs: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def helm_binary(given: str | None) -> str:
    if given:
        return given
    state = Path(os.environ.get("AUTODEVHUB_CI_STATE", "/var/lib/autodevhub-ci")) / "bench"
    binary = state / f"helm-{HELM_VERSION}"
    if not binary.exists():
        print(f"building helm {HELM_VERSION} from the Go module proxy (once)", file=sys.stderr)
        build = Path(tempfile.mkdtemp(prefix="helm-build-"))
        run(
            ["go", "install", f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"],
            env={**os.environ, "GOBIN": str(build)},
        )
        state.mkdir(parents=True, exist_ok=True)
        shutil.move(str(build / "helm"), binary)
    return str(binary)


def record_releases(store: Any, target: str, files: dict[str, str], count: int) -> None:
    """`count` good releases, each with these files."""
    from autodevhub_cli.core.releases import DEPLOYED

    for _ in range(count):
        release = store.new(target, "0" * 40)
        for name, text in files.items():
            store.attach(release, name, text)
        release.status = DEPLOYED
        store.save(release)


def deploy_records(driver: Any, environment: str, files: dict[str, str]) -> None:
    """What a deploy does with the history, in a new process's order: read it, record the
    release pending, keep its files before applying, mark it deployed (then, for the next
    round, delete it)."""
    from autodevhub_cli.core.releases import DEPLOYED, ReleaseStore

    store = ReleaseStore(driver, environment)
    store.all()
    release = store.new("bench", "0" * 40)
    for name, text in files.items():
        store.attach(release, name, text)
    store.save(release)
    release.status = DEPLOYED
    store.save(release)
    driver.delete(release.id)


def prod_release_files() -> dict[str, str]:
    from autodevhub_cli.core.pipeline import RenderRequest, render_environment

    outcome = render_environment(RenderRequest(environment="prod", project_dir=REPO))
    return {
        "manifests.yaml": outcome.result.to_yaml(),
        "environment.json": outcome.environment.model_dump_json(),
    }


def kubernetes(kubeconfig: Path, releases: int, runs: int, helm: str) -> list[tuple[str, float]]:
    import yaml

    from autodevhub_cli.core.adapters.kube import Kube, ObjectRef
    from autodevhub_cli.core.releases import ReleaseStore
    from autodevhub_cli.core.targets.kube_store import KubeReleaseDriver
    from autodevhub_cli.core.targets.lease import Lease

    kube = Kube.connect(kubeconfig=str(kubeconfig))
    ns = f"bench-state-{uuid.uuid4().hex[:6]}"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    work = Path(tempfile.mkdtemp(prefix="state-bench-"))
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(work)}
    figures = []
    try:
        files = prod_release_files()
        store = ReleaseStore(KubeReleaseDriver(kube, ns, "prod"), "prod")
        record_releases(store, "kubernetes", files, releases)
        # Helm: a chart rendering the same manifests, each as a ConfigMap's data.
        chart = work / "chart"
        (chart / "templates").mkdir(parents=True)
        (chart / "Chart.yaml").write_text("apiVersion: v2\nname: bench\nversion: 0.1.0\n")
        docs = [d for d in yaml.safe_load_all(files["manifests.yaml"]) if d]
        for i, doc in enumerate(docs):
            body = yaml.safe_dump(doc).replace("{{", "{ {")
            config = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"doc-{i}"},
                "data": {"doc.yaml": body, "revision": "{{ .Release.Revision }}"},
            }
            text = yaml.safe_dump(config).replace(
                "'{{ .Release.Revision }}'", '"{{ .Release.Revision }}"'
            )
            (chart / "templates" / f"doc-{i}.yaml").write_text(text)
        for _ in range(releases):
            run([helm, "upgrade", "--install", "bench", str(chart), "-n", ns], env)
        project = REPO
        cli = [str(Path(sysconfig.get_path("scripts")) / "autodevhub")]
        ours = {
            **env,
            "AUTODEVHUB__NAMESPACE": ns,
            "AUTODEVHUB__KUBERNETES__KUBECONFIG": str(kubeconfig),
        }
        listed = json.loads(run([*cli, "history", "--env", "prod", "-o", "json"], ours, project))
        assert len(listed["releases"]) == releases, listed
        figures.append(
            (
                f"`autodevhub history --env prod` ({releases} releases)",
                median_of(
                    runs,
                    lambda: run([*cli, "history", "--env", "prod", "-o", "json"], ours, project),
                ),
            )
        )
        figures.append(
            (
                f"`helm history` ({releases} revisions)",
                median_of(
                    runs, lambda: run([helm, "history", "bench", "-n", ns, "-o", "json"], env)
                ),
            )
        )
        selector = "autodevhub.io/release-store=v1,autodevhub.io/environment=prod"
        figures.append(
            (
                "`kubectl get secrets -l` (the list call underneath)",
                median_of(
                    runs,
                    lambda: run(
                        ["kubectl", "get", "secrets", "-n", ns, "-l", selector, "-o", "json"], env
                    ),
                ),
            )
        )

        figures.append(
            (
                "a deploy's records in the process (list, create, 2 updates)",
                median_of(
                    runs, lambda: deploy_records(KubeReleaseDriver(kube, ns, "prod"), "prod", files)
                ),
            )
        )

        def lease() -> None:
            with Lease(kube, ns, "autodevhub-prod").hold("deploy"):
                pass

        figures.append(("the Lease taken and given back", median_of(runs, lease)))
    finally:
        kube.delete(ObjectRef("v1", "Namespace", "", ns))
        shutil.rmtree(work, ignore_errors=True)
    return figures


def docker(releases: int, runs: int) -> list[tuple[str, float]]:
    from autodevhub_cli.core.adapters.docker_engine import connect
    from autodevhub_cli.core.pipeline import RenderRequest, render_environment
    from autodevhub_cli.core.releases import ReleaseStore
    from autodevhub_cli.core.targets.engine_state import EngineLock, EngineReleaseDriver

    client = connect()
    project = f"bench-state-{uuid.uuid4().hex[:6]}"
    outcome = render_environment(RenderRequest(environment="dev", project_dir=REPO))
    files = {
        "compose.yaml": outcome.result.to_yaml(),
        "environment.json": outcome.environment.model_dump_json(),
    }
    figures = []
    store = ReleaseStore(EngineReleaseDriver(client, project, "dev"), "dev")
    try:
        record_releases(store, "compose", files, releases)
        cli = [str(Path(sysconfig.get_path("scripts")) / "autodevhub")]
        env = {**os.environ, "AUTODEVHUB__COMPOSE__PROJECT_NAME": project}
        figures.append(
            (
                f"`autodevhub history --env dev` ({releases} releases)",
                median_of(
                    runs, lambda: run([*cli, "history", "--env", "dev", "-o", "json"], env, REPO)
                ),
            )
        )
        label = f"label=io.autodevhub.release-store={project}"
        figures.append(
            (
                "`docker volume ls --filter` (the list call underneath)",
                median_of(
                    runs,
                    lambda: run(
                        ["docker", "volume", "ls", "--filter", label, "--format", "{{json .}}"]
                    ),
                ),
            )
        )

        figures.append(
            (
                "a deploy's records in the process (list, create, 2 updates)",
                median_of(
                    runs,
                    lambda: deploy_records(
                        EngineReleaseDriver(client, project, "dev"), "dev", files
                    ),
                ),
            )
        )

        def lock() -> None:
            with EngineLock(client, project).hold("deploy"):
                pass

        figures.append(("the lock container taken and given back", median_of(runs, lock)))
    finally:
        for volume in client.volumes.list(
            filters={"label": f"io.autodevhub.release-store={project}"}
        ):
            volume.remove(force=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=10)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--helm", help="a helm binary (default: built once from Go modules)")
    options = parser.parse_args()
    from tests.deploy import local_cluster

    kubeconfig, why = local_cluster.kubeconfig()
    if kubeconfig is None:
        sys.exit(why)
    helm = helm_binary(options.helm)
    print(run([helm, "version", "--short"]).strip())
    for title, figures in (
        (
            "Kubernetes (Secrets in the namespace)",
            kubernetes(kubeconfig, options.releases, options.runs, helm),
        ),
        ("Docker Compose (volumes on the engine)", docker(options.releases, options.runs)),
    ):
        print(title)
        for what, seconds in figures:
            print(f"  {what}: {seconds * 1000:.0f} ms")


if __name__ == "__main__":
    main()
