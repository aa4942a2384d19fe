"""The pipeline's deploy jobs, run the way CI runs them (`.github/workflows/pipeline.yml`).

Each job (build, staging, prod; `test` is this suite itself) runs in a fresh clone of the
repository (its tracked and untracked files, nothing of `.autodevhub/`), with a home folder and
a virtualenv of its own: its `run:` steps in order, in bash as the runner does, with the step's
`env:` (secrets given as the runner would), `$GITHUB_OUTPUT`, and the `uses:` steps done as the
actions do them (checkout is the fresh clone, setup-python the machine's Python,
upload-artifact and download-artifact copy the files between jobs). Against the local registry
and the real control plane: the build job pushes the images, staging and prod deploy exactly
the pushed digests from the artifact, prod blue-green (its first revision active at once, so
the promote step has nothing to promote and passes). Then a failing
deploy from yet another fresh clone rolls back to the release the staging job made.

What the runner's environment supplies, as a CI system's configuration would: the stand-in base
images and the local registry (build args and registry URL), and where the smoke checks reach
the app (the control plane's nodes are kwok's: pods run no process).

Why kwok nodes are enough here: the test is about the pipeline: its jobs' steps, artifacts and
environment; that staging's release names exactly the digests the build job pushed (its image
refs end with them) and prod's artifact names the same ones; the CI link in deployed_by,
prod's history, and a later runner's rollback (its exit code, message and
`status`). kwok never pulls those images: an image pushed by `autodevhub build --push`, pulled
by digest and run by containerd, is test_the_backend_image_runs_on_the_real_node, and a whole
`autodevhub deploy` of staging (build, push, migrate, checks) on real pods is
test_staging_runs_on_the_real_node.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from autodevhub_cli.core.adapters.kube import Kube, ObjectRef
from tests.deploy import local_cluster
from tests.helpers import REPO
from tests.images.conftest import BASE_IMAGES, REGISTRY

pytestmark = [pytest.mark.k8s, pytest.mark.docker, pytest.mark.browser]

WORKFLOW = REPO / ".github" / "workflows" / "pipeline.yml"
DEPLOY_JOBS = ("build", "staging", "prod")


def _namespaces() -> tuple[str, ...]:
    """The namespaces the staging and prod environment files name (the jobs deploy there)."""
    from autodevhub_cli.core.config import load_environment
    from autodevhub_cli.core.project import find_project

    project = find_project(REPO)
    return tuple(
        load_environment(project, env, environ={}).namespace for env in ("staging", "prod")
    )


NAMESPACES = _namespaces()
EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


def fresh_clone(dest: Path) -> Path:
    """The repository's files (tracked and untracked, not ignored) in a new folder."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


class Runner:
    """One job's machine: a fresh clone, a home and a virtualenv of its own."""

    def __init__(self, work: Path, job: str, base_env: dict[str, str]) -> None:
        self.job = job
        self.root = fresh_clone(work / job / "repo")
        self.home = work / job / "home"
        self.home.mkdir(parents=True)
        venv = work / job / "venv"
        subprocess.run(
            [sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True
        )
        self.output = work / job / "github_output"
        self.output.touch()
        self.env = {
            **base_env,
            "HOME": str(self.home),
            "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
            "VIRTUAL_ENV": str(venv),
            "GITHUB_OUTPUT": str(self.output),
            "GITHUB_JOB": job,
        }
        self.env.pop("AUTODEVHUB_PROJECT_DIR", None)
        self.env.pop("KUBECONFIG", None)

    def run(self, script: str, step_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """A `run:` step: bash with -e and pipefail, as GitHub's runner starts it."""
        return subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=self.root,
            env={**self.env, **step_env},
            capture_output=True,
            text=True,
            timeout=900,
        )

    def outputs(self) -> dict[str, str]:
        found = {}
        for line in self.output.read_text().splitlines():
            key, _, value = line.partition("=")
            found[key] = value
        return found


def expand(text: str, context: dict[str, dict[str, str]]) -> str:
    """`${{ secrets.X }}`, `${{ env.X }}` in a step's `env:` or `with:`."""

    def value(match: re.Match[str]) -> str:
        scope, _, name = match.group(1).partition(".")
        assert scope in context and name in context[scope], f"no {match.group(1)} in the test"
        return context[scope][name]

    return EXPRESSION.sub(value, text)


def run_job(
    runner: Runner, job: dict[str, Any], artifacts: Path, context: dict[str, dict[str, str]]
) -> list[str]:
    """Every step of a job in order; the log of each `run:` step."""
    logs = []
    failed = False
    for step in job["steps"]:
        if failed and step.get("if") != "always()":
            continue
        uses = str(step.get("uses", ""))
        inputs = {k: expand(str(v), context) for k, v in (step.get("with") or {}).items()}
        if uses.startswith(("actions/checkout@", "actions/setup-python@")):
            continue  # the fresh clone; this machine's Python
        if uses.startswith("actions/upload-artifact@"):
            folder = artifacts / inputs["name"]
            folder.mkdir(parents=True, exist_ok=True)
            for found in glob.glob(inputs["path"], root_dir=runner.root):
                shutil.copy2(runner.root / found, folder / Path(found).name)
            continue
        if uses.startswith("actions/download-artifact@"):
            for found in (artifacts / inputs["name"]).iterdir():
                shutil.copy2(found, runner.root / found.name)
            continue
        assert not uses, f"job {runner.job}: the test does not know the action {uses}"
        env = {k: expand(str(v), context) for k, v in (step.get("env") or {}).items()}
        done = runner.run(step["run"], env)
        logs.append(f"$ {step['run']}\n{done.stdout}{done.stderr}")
        if done.returncode != 0:
            failed = True
            logs.append(f"job {runner.job}: step {step.get('name') or step['run']!r} failed")
    assert not failed, "\n".join(logs)
    return logs


def _clean(kube: Kube) -> None:
    for namespace in NAMESPACES:
        kube.delete(ObjectRef("v1", "Namespace", "", namespace))


def test_the_pipeline_jobs_deploy_from_fresh_clones_and_a_later_runner_rolls_back(
    tmp_path: Path, app: dict[str, str]
) -> None:
    kube, kubeconfig = local_cluster.connect_with_engine()
    gone = [n for n in NAMESPACES if kube.get(ObjectRef("v1", "Namespace", "", n)) is None]
    if len(gone) < len(NAMESPACES):
        _clean(kube)
        local_cluster_wait_gone(kube)
    workflow = yaml.safe_load(WORKFLOW.read_text())
    run_id = str(uuid.uuid4().int % 10**9)
    base_env = {
        **os.environ,
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_RUN_ID": run_id,
        "GITHUB_REPOSITORY": "example/autodevhub",
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REF": "refs/heads/main",
        # The runner's configuration: the stand-in bases, the local registry, and where the
        # smoke checks reach the app.
        "AUTODEVHUB__REGISTRY__URL": f"{REGISTRY}/pipeline-{run_id}",
        **{f"AUTODEVHUB__BUILD__ARGS__{k}_IMAGE": v for k, v in BASE_IMAGES.items()},
        "AUTODEVHUB__SMOKE__URLS__FRONTEND": app["base"],
        "AUTODEVHUB__SMOKE__URLS__BACKEND": app["backend"],
        "AUTODEVHUB__SMOKE__PREVIEW_URLS__BACKEND": app["backend"],
        "AUTODEVHUB__SMOKE__TIMEOUT_SECONDS": "10",
        "AUTODEVHUB__SMOKE__CHECKS__2__LATENCY__BUDGET_MS": "2000",
    }
    kubeconfig_text = Path(kubeconfig).read_text()
    context = {
        "secrets": {
            "REGISTRY_USERNAME": "",
            "REGISTRY_PASSWORD": "",
            "STAGING_KUBECONFIG": kubeconfig_text,
            "PROD_KUBECONFIG": kubeconfig_text,
        },
        "env": {k: str(v) for k, v in (workflow.get("env") or {}).items()},
    }
    artifacts = tmp_path / "artifacts"
    runners: dict[str, Runner] = {}
    try:
        for name in DEPLOY_JOBS:
            job = workflow["jobs"][name]
            needs = job.get("needs")
            # `test` is this suite itself, passing as it runs this.
            assert needs in ("test", *runners), f"{name} needs {needs}, not run yet"
            runners[name] = Runner(tmp_path, name, base_env)
            run_job(runners[name], job, artifacts, context)

        built = {
            env: {
                i["name"]: i
                for i in json.loads((artifacts / "images" / f"{env}-images.json").read_text())[
                    "images"
                ]
            }
            for env in ("staging", "prod")
        }
        # The staging job deployed exactly the pushed digests, from the artifact.
        deployed = json.loads((runners["staging"].root / "deploy.json").read_text())
        release = deployed["release"]
        assert deployed["ok"] and release["status"] == "deployed"
        for image in release["images"]:
            if image["name"] in built["staging"]:
                assert image["ref"].endswith("@" + built["staging"][image["name"]]["digest"])
        assert release["deployed_by"]["ci"] == (
            f"https://github.example/example/autodevhub/actions/runs/{run_id}"
        )
        # Prod runs the same content: the same digests as staging. Its first Rollout revision
        # goes straight to active (Argo makes no preview of a first revision), so the promote
        # step finds nothing to promote and passes.
        assert {n: i["digest"] for n, i in built["prod"].items()} == {
            n: i["digest"] for n, i in built["staging"].items()
        }
        later = Runner(tmp_path, "later", base_env)
        later.env["KUBECONFIG"] = str(kubeconfig)
        history = later.run("autodevhub history --env prod --output json", {})
        assert history.returncode == 0, history.stderr
        (prod,) = json.loads(history.stdout)["releases"]
        assert prod["status"] == "deployed" and "promote" not in prod["timings"]

        # A later runner's failing deploy goes back to the release the staging job made.
        shutil.copy2(artifacts / "images" / "staging-images.json", later.root)
        failing = later.run(
            "autodevhub deploy --env staging --images staging-images.json --timeout 60 "
            "--set 'smoke.checks=[{name: broken, component: frontend, path: /, "
            "expect: {contains: text-no-page-has}}]'",
            {},
        )
        message = " ".join(failing.stderr.split())
        assert failing.returncode == 3, failing.stderr
        assert f"Rolled back to release {release['id']}" in message, message
        status = later.run("autodevhub status --env staging --output json", {})
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["current"]["id"] == release["id"]
    finally:
        _clean(kube)


def local_cluster_wait_gone(kube: Kube) -> None:
    """Namespaces left by an earlier run are gone before this one starts."""
    import time

    deadline = time.monotonic() + 120
    while any(kube.get(ObjectRef("v1", "Namespace", "", n)) for n in NAMESPACES):
        assert time.monotonic() < deadline, "the namespaces of an earlier run did not go"
        time.sleep(1)
