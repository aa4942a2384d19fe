"""The release history and the deploy lock live with the environment, so two runners that share
nothing but the target (two clean clones: two CI jobs, two laptops) see one history and exclude
each other. On the real control plane and the real Docker engine:

- runner A deploys; runner B, a fresh clone whose `.autodevhub/` is deleted before every
  command, deploys a release that fails its smoke check: B rolls back to A's release, and no
  object of A's release is deleted (the same UIDs; the same data volume);
- B's `status`, `history` and `rollback --to` show and use A's releases;
- B's deploy while A's deploy runs is refused, naming A's process;
- a lock whose holder stopped renewing it is taken over, a live one is not;
- a record in the store that cannot be read is an error naming it, never skipped.

Why kwok nodes are enough here (for the Kubernetes tests; the Docker ones run real containers):
the history is Secrets in the namespace and the lock a Lease, both kept by the API server alone.
The tests assert the records a clone with nothing on disk reads back, the UIDs of the
environment's objects (nothing deleted or replaced), the RUNNER mark in the frontend
Deployment's template, the Lease holder a refused deploy names, and exit codes and messages. The
failing deploys fail a smoke check against the real nginx on 127.0.0.1, not a pod; two tests
create no pod at all (a release split across Secrets, a bad --images file). A rollback that
brings real pods back to serving is
test_a_broken_release_on_the_real_node_is_diagnosed_and_rolled_back.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autodevhub_cli.core.adapters.kube import ObjectRef
from tests.deploy.conftest import Stack
from tests.deploy.kube_cluster import Cluster, project_copy
from tests.helpers import HeldEndpoint, copy_project
from tests.images.conftest import _engine_problem

BROKEN_CHECK = (
    "smoke.checks=[{name: broken, component: frontend, path: /, "
    "expect: {contains: text-no-page-has}}]"
)
KINDS = [
    "Deployment",
    "Service",
    "Ingress",
    "NetworkPolicy",
    "HorizontalPodAutoscaler",
    "ServiceMonitor",
    "CronJob",
]


@pytest.fixture()
def gate() -> Iterator[HeldEndpoint]:
    made = HeldEndpoint()
    yield made
    made.close()


@contextlib.contextmanager
def _held_deploy(
    cli_args: list[str], env: dict[str, str], gate: HeldEndpoint
) -> Iterator[subprocess.Popen[str]]:
    """Runner A's deploy in a process of its own, held in its smoke step by the gate while the
    block runs; then let go, and it must succeed."""
    held = ["smoke.probes=false", f"smoke.urls.frontend={gate.url}"]
    held.append("smoke.checks=[{name: held, component: frontend, path: /}]")
    proc = subprocess.Popen(
        [sys.executable, "-m", "autodevhub_cli", *cli_args, *(f"--set={s}" for s in held)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert gate.asked.wait(120), "runner A's deploy never reached its smoke check"
        yield proc
    finally:
        gate.opened.set()
        assert proc.stderr is not None
        rest = proc.stderr.read()
        assert proc.wait(timeout=120) == 0, rest


# --- Kubernetes -----------------------------------------------------------------------------


def _runner_b(a: Cluster, tmp_path: Path) -> Cluster:
    """A second clean clone of the project, on the same cluster and namespace."""
    app = {"base": a.env["AUTODEVHUB__SMOKE__URLS__FRONTEND"]}
    app["backend"] = a.env["AUTODEVHUB__SMOKE__URLS__BACKEND"]
    b = Cluster(project_copy(tmp_path / "runner-b"), a.kubeconfig, None, app)
    b.ns = a.ns
    b.env = dict(a.env)
    return b


def _b_cli(b: Cluster, *args: str) -> tuple[int, str, str]:
    """A command of runner B, with nothing of its own on disk (as a fresh CI job)."""
    shutil.rmtree(b.root / ".autodevhub", ignore_errors=True)
    return b.cli(*args)


def _objects(cluster: Cluster) -> dict[str, str]:
    """`Kind/name` -> uid of every object of the environment."""
    selector = "app.kubernetes.io/managed-by=autodevhub"
    return {
        f"{kind}/{item['metadata']['name']}": item["metadata"]["uid"]
        for kind in KINDS
        for item in cluster.objs(kind, selector)
    }


def _frontend_mark(cluster: Cluster) -> str | None:
    deployment = cluster.obj("Deployment", "frontend")
    assert deployment is not None
    env = deployment["spec"]["template"]["spec"]["containers"][0].get("env") or []
    return next((e["value"] for e in env if e["name"] == "RUNNER"), None)


@pytest.mark.k8s
@pytest.mark.browser
def test_a_fresh_runner_sees_the_history_and_rolls_back_to_another_runners_release(
    cluster: Cluster, tmp_path: Path, gate: HeldEndpoint
) -> None:
    a = cluster
    a.record_build("staging", "c-00000000000000e1")
    code, _, err = a.deploy("staging", "--set", "components.frontend.env.RUNNER=a")
    assert code == 0, err
    (first,) = a.releases("staging")
    kept = _objects(a)
    assert len(kept) >= 10, kept
    images = tmp_path / "images.json"  # the build job's artifact
    shutil.copy(a.root / ".autodevhub" / "builds" / "staging.json", images)
    b = _runner_b(a, tmp_path)
    deploy_b = ["deploy", "--env", "staging", "--images", str(images), "--timeout", "60"]
    mark = ["--set", "components.backend.env.RELEASE_MARK=c-00000000000000e1"]

    # B's release fails its smoke check: B rolls back to A's release, deleting nothing.
    code, _, err = _b_cli(
        b, *deploy_b, *mark, "--set", "components.frontend.env.RUNNER=b", "--set", BROKEN_CHECK
    )
    message = " ".join(err.split())
    assert code == 3, err
    assert f"Rolled back to release {first['id']}" in message and "passes its smoke" in message
    assert "no earlier good release" not in message
    assert _objects(a) == kept, "an object of A's release was deleted or replaced"
    assert _frontend_mark(a) == "a"

    # B's status and history show A's releases; B's own record says what it restored.
    code, out, err = _b_cli(b, "status", "--env", "staging", "--output", "json")
    assert code == 0, err
    state = json.loads(out)
    assert state["current"]["id"] == first["id"]
    assert state["last_attempt"]["status"] == "failed"
    assert state["last_attempt"]["restored"] == first["id"]
    assert {w["workload"] for w in state["workloads"]} >= {"Deployment/backend"}
    history = b.releases("staging")
    assert history[0]["id"] == first["id"]
    assert history[-1]["sets"][-1] == BROKEN_CHECK
    assert history[0]["deployed_by"]["user"]

    # B deploys a good release, then rolls back to A's by id.
    code, _, err = _b_cli(b, *deploy_b, *mark, "--set", "components.frontend.env.RUNNER=b")
    assert code == 0, err
    assert _frontend_mark(a) == "b"
    code, out, err = _b_cli(b, "rollback", "--env", "staging", "--to", first["id"], "-o", "json")
    assert code == 0, err
    rolled = json.loads(out)["release"]
    assert rolled["rollback_of"] == first["id"] and rolled["commit"] == first["commit"]
    assert _frontend_mark(a) == "a"

    # A deploys and is held in its smoke step: B's deploy is refused, naming A's process.
    a.record_build("staging", "c-00000000000000e2")
    a_deploy = ["deploy", "--env", "staging", "--skip-build", "--project-dir", str(a.root)]
    a_deploy += ["--set", "components.backend.env.RELEASE_MARK=c-00000000000000e2"]
    with _held_deploy(a_deploy, {**os.environ, **a.env}, gate) as held:
        code, _, err = _b_cli(b, *deploy_b, *mark)
        message = " ".join(err.split())
        assert code == 1, err
        assert f"holds Lease {a.ns}/autodevhub-staging" in message, message
        assert f"pid {held.pid}" in message, message
    assert b.releases("staging")[-1]["status"] == "deployed"


@pytest.mark.k8s
@pytest.mark.browser
def test_a_record_that_cannot_be_read_is_named_not_skipped(cluster: Cluster) -> None:
    cluster.record_build("staging", "c-00000000000000e3")
    assert cluster.deploy("staging")[0] == 0
    (release,) = cluster.releases("staging")
    name = f"autodevhub.release.v1.staging.{release['id'].lower()}"
    newer = gzip.compress(json.dumps({"format": 99, "release": {}, "files": {}}).encode())
    for data, words in (
        (b"\x1f\x8b torn", "is corrupt"),
        (newer, "written by a newer autodevhub (record format 99"),
    ):
        cluster.patch_as(
            "test", "Secret", name, {"data": {"release": base64.b64encode(data).decode()}}
        )
        for command in ("status", "history", "deploy"):
            args = ["--skip-build"] if command == "deploy" else []
            code, _, err = cluster.cli(command, "--env", "staging", *args)
            message = " ".join(err.split())
            assert code == 1, (command, err)
            assert f"Secret {cluster.ns}/{name}" in message and words in message, message
            assert "Traceback" not in err and "Unexpected error" not in err


# --- Docker Compose -------------------------------------------------------------------------


@pytest.fixture()
def runners(tmp_path: Path) -> Iterator[tuple[Stack, Stack]]:
    """Two clean clones of the project deploying one Compose environment on one engine."""
    problem = _engine_problem()
    if problem:
        pytest.skip(problem)
    name = f"adh{uuid.uuid4().hex[:8]}"
    a = Stack(copy_project(tmp_path / "runner-a", with_service=True), name)
    b = Stack(copy_project(tmp_path / "runner-b", with_service=True), name)
    b.env = dict(a.env)  # the same project name and ports: the same environment
    b.frontend_port, b.backend_port = a.frontend_port, a.backend_port
    yield a, b
    a.cli("down", "--env", "dev", "--volumes")
    a.forget()


def _compose_cli(stack: Stack, *args: str) -> tuple[int, str, str]:
    shutil.rmtree(stack.root / ".autodevhub", ignore_errors=True)
    return stack.cli(*args)


def _containers(stack: Stack) -> dict[str, dict[str, Any]]:
    import docker

    client = docker.from_env()
    found = client.containers.list(filters={"label": f"com.docker.compose.project={stack.name}"})
    return {c.labels["com.docker.compose.service"]: c.attrs for c in found}


@pytest.mark.docker
@pytest.mark.compose
def test_two_runners_on_one_docker_host_share_history_and_lock(
    runners: tuple[Stack, Stack], tmp_path: Path, gate: HeldEndpoint
) -> None:
    import httpx

    a, b = runners
    code, out, err = a.cli("deploy", "--env", "dev", "--output", "json")
    assert code == 0, err
    first = json.loads(out)["release"]
    base = f"http://127.0.0.1:{a.backend_port}"
    created = httpx.post(f"{base}/api/stories", json={"feature": "Kept across runners"})
    assert created.status_code == 202, created.text
    images = tmp_path / "images.json"
    shutil.copy(a.root / ".autodevhub" / "builds" / "dev.json", images)
    deploy_b = ["deploy", "--env", "dev", "--images", str(images), "--timeout", "60"]

    # B changes the frontend and fails its smoke check: back to A's release, data kept.
    code, _, err = _compose_cli(
        b, *deploy_b, "--set", "components.frontend.env.RUNNER=b", "--set", BROKEN_CHECK
    )
    message = " ".join(err.split())
    assert code == 3, err
    assert f"Rolled back to release {first['id']}" in message and "passes its smoke" in message
    frontend = _containers(a)["frontend"]
    assert "RUNNER=b" not in frontend["Config"]["Env"]
    story = httpx.get(f"{base}/api/stories/{created.json()['id']}")
    assert story.status_code == 200, "the data volume of A's release was lost"

    # B's history, status and rollback use A's releases.
    code, out, err = _compose_cli(b, "history", "--env", "dev", "--output", "json")
    assert code == 0, err
    history = json.loads(out)["releases"]
    assert history[0]["id"] == first["id"]
    assert history[-1]["status"] == "failed" and history[-1]["restored"] == first["id"]
    code, out, err = _compose_cli(b, "history", "--env", "dev")
    assert code == 0, err
    # Each image under the component that runs it (backend and worker share one image).
    for image in history[0]["images"]:
        ref = image["ref"].rsplit("/", 1)[-1]
        assert f"      {image['name']:9} {ref}\n" in out, out
    code, out, err = _compose_cli(b, "status", "--env", "dev", "--output", "json")
    assert code == 0, err
    state = json.loads(out)
    assert state["current"]["id"] == first["id"]
    assert {w["workload"] for w in state["workloads"]} == {"backend", "worker", "frontend"}
    # A fresh clone's --skip-build reuses the images of the release that serves.
    code, _, err = _compose_cli(
        b, "deploy", "--env", "dev", "--skip-build", "--set", "components.frontend.env.RUNNER=b"
    )
    assert code == 0, err
    assert f"skipped: using the images of release {first['id']}, which serves" in err
    assert "RUNNER=b" in _containers(a)["frontend"]["Config"]["Env"]
    code, out, err = _compose_cli(b, "rollback", "--env", "dev", "--to", first["id"], "-o", "json")
    assert code == 0, err
    assert json.loads(out)["release"]["commit"] == first["commit"]
    assert "RUNNER=b" not in _containers(a)["frontend"]["Config"]["Env"]

    # A's deploy held in its smoke step: B is refused, naming A's process.
    with _held_deploy(["deploy", "--env", "dev", "--skip-build"], a.process_env(), gate) as held:
        code, _, err = _compose_cli(b, *deploy_b)
        message = " ".join(err.split())
        assert code == 1, err
        assert f"holds the lock container autodevhub-lock.{a.name}" in message, message
        assert f"pid {held.pid}" in message, message


@pytest.mark.docker
def test_a_lock_whose_holder_stopped_renewing_is_taken_over(tmp_path: Path) -> None:
    """A holder on another machine: live while it renews, taken over once it has been silent
    for the lock's duration; the taker removes it by id, so a late holder cannot be removed."""
    import docker

    from autodevhub_cli.core.lock import DeployLockedError
    from autodevhub_cli.core.targets.engine_state import LOCK_IMAGE, EngineLock

    problem = _engine_problem()
    if problem:
        pytest.skip(problem)
    client = docker.from_env()
    project = f"adh{uuid.uuid4().hex[:8]}"
    name = f"autodevhub-lock.{project}"
    mine = EngineLock(client, project, duration=60)
    mine.acquire("deploy")  # imports the lock image on a fresh engine
    mine.release()

    def foreign(since: str) -> None:
        client.api.create_container(
            LOCK_IMAGE,
            command=["/autodevhub-lock"],
            name=name,
            labels={
                "io.autodevhub.holder": "ci@runner-7 pid 4242",
                "io.autodevhub.host": "runner-7",
                "io.autodevhub.pid": "4242",
                "io.autodevhub.command": "deploy",
                "io.autodevhub.since": since,
            },
        )

    try:
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        foreign(now)
        with pytest.raises(DeployLockedError, match="ci@runner-7 pid 4242"):
            EngineLock(client, project, duration=60).acquire("deploy")
        client.api.remove_container(name, force=True)
        foreign("2020-01-01T00:00:00.000000Z")
        taker = EngineLock(client, project, duration=60)
        taker.acquire("deploy")
        labels = client.api.inspect_container(name)["Config"]["Labels"]
        assert labels["io.autodevhub.holder"] == taker.identity
        taker.renew("deploy")
        taker.check()
        taker.release()
        assert not client.containers.list(all=True, filters={"name": name})
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(name, force=True)


@pytest.mark.k8s
@pytest.mark.browser
def test_a_release_larger_than_a_secret_is_split_and_joined(cluster: Cluster) -> None:
    """A release whose stored form passes 512 KiB spans several Secrets, read back whole; when
    it shrinks, the parts it no longer needs are deleted, and deleting it deletes them all."""
    import os

    from autodevhub_cli.core.releases import ReleaseStore
    from autodevhub_cli.core.targets.kube_store import KubeReleaseDriver

    cluster.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cluster.ns}})
    store = ReleaseStore(KubeReleaseDriver(cluster.kube, cluster.ns, "staging"), "staging")
    release = store.new("kubernetes", "abc")
    big = base64.b64encode(os.urandom(1_200_000)).decode()  # 1.6 MB, about 1.2 MB gzip'd
    store.attach(release, "manifests.yaml", big)
    store.save(release)
    names = sorted(s["metadata"]["name"] for s in cluster.objs("Secret"))
    main = f"autodevhub.release.v1.staging.{release.id.lower()}"
    assert names == [main, f"{main}.2", f"{main}.3"], names
    fresh = ReleaseStore(KubeReleaseDriver(cluster.kube, cluster.ns, "staging"), "staging")
    (again,) = fresh.all()
    assert fresh.text(again, "manifests.yaml") == big
    store.attach(release, "manifests.yaml", "kind: List\n")
    store.save(release)
    assert [s["metadata"]["name"] for s in cluster.objs("Secret")] == [main]
    store.driver.delete(release.id)
    assert cluster.objs("Secret") == []


@pytest.mark.k8s
@pytest.mark.browser
def test_with_its_records_lost_a_failing_deploy_deletes_nothing_that_served(
    cluster: Cluster,
) -> None:
    """The environment runs, but the history in the namespace is gone (deleted by hand, or the
    objects were applied by another tool): a failing deploy has no release to go back to, and
    must neither stop nor prune what served. It says so, and what to do."""
    cluster.record_build("staging", "c-00000000000000e4")
    assert cluster.deploy("staging")[0] == 0
    kept = _objects(cluster)
    for secret in cluster.objs("Secret", "autodevhub.io/release-store=v1"):
        cluster.kube.delete(ObjectRef("v1", "Secret", cluster.ns, secret["metadata"]["name"]))
    assert cluster.releases("staging") == []
    code, _, err = cluster.deploy(
        "staging", "--set", "network_policies.enabled=false", "--set", BROKEN_CHECK
    )
    message = " ".join(err.split())
    assert code == 3, err
    assert "has no good release to roll back to" in message, message
    assert "already ran before this deploy" in message and "nothing was deleted" in message
    assert "was stopped" not in message
    # Everything that served is there, the NetworkPolicies the failed release dropped included.
    assert _objects(cluster) == kept


@pytest.mark.k8s
@pytest.mark.browser
def test_records_an_earlier_version_kept_locally_move_into_the_namespace(cluster: Cluster) -> None:
    """A project deployed by an earlier autodevhub has its history under .autodevhub/releases:
    the first deploy that finds the namespace's history empty imports it, once."""
    import yaml

    cluster.record_build("staging", "c-00000000000000e5")
    code, out, err = cluster.cli(
        "render",
        "--env",
        "staging",
        "--images",
        str(cluster.root / ".autodevhub" / "builds" / "staging.json"),
    )
    assert code == 0, err
    old = "20261101T000000000Z-0ld0ld"
    folder = cluster.root / ".autodevhub" / "releases" / "staging" / old
    folder.mkdir(parents=True)
    (folder / "manifests.yaml").write_text(out)
    record = {
        "id": old,
        "environment": "staging",
        "target": "kubernetes",
        "commit": "c0ffee",
        "created_at": "2026-11-01T00:00:00Z",
        "status": "deployed",
        "images": [],
    }
    (folder / "release.json").write_text(json.dumps(record))
    code, _, err = cluster.deploy("staging", "-v")
    assert code == 0, err
    assert "imported 1 release record(s)" in err
    history = cluster.releases("staging")
    assert history[0]["id"] == old and history[-1]["status"] == "deployed"
    assert not folder.parent.exists() and folder.parent.with_name("staging.imported").is_dir()
    assert any(
        d["kind"] == "Deployment"
        for d in yaml.safe_load_all(cluster.release_file("staging", old, "manifests.yaml"))
        if d
    )


@pytest.mark.docker
def test_a_record_on_the_engine_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    import docker

    problem = _engine_problem()
    if problem:
        pytest.skip(problem)
    stack = Stack(copy_project(tmp_path / "project"), f"adh{uuid.uuid4().hex[:8]}")
    name = f"autodevhub-release.{stack.name}.dev.20261206T000000000Z-abcdef.1"
    labels = {
        "io.autodevhub.release-store": stack.name,
        "io.autodevhub.environment": "dev",
        "io.autodevhub.release": "20261206T000000000Z-abcdef",
        "io.autodevhub.version": "1",
        "io.autodevhub.record": base64.b64encode(b"not a record").decode(),
    }
    docker.from_env().volumes.create(name, labels=labels)
    try:
        for command in ("status", "history"):
            code, _, err = stack.cli(command, "--env", "dev")
            message = " ".join(err.split())
            assert code == 1, err
            assert f"The release record in Docker volume {name} is corrupt" in message, message
            assert f"docker volume rm {name}" in message, message
    finally:
        stack.forget()


@pytest.mark.k8s
@pytest.mark.browser
@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "does not exist"),
        ("{not json", "is not readable JSON"),
        ('{"environment": "prod", "images": [{"name": "backend", "tag": "t"}]}', "built for"),
    ],
    ids=["missing", "not-json", "other-environment"],
)
def test_a_bad_images_file_stops_the_deploy_before_anything_is_applied(
    cluster: Cluster, tmp_path: Path, content: str | None, words: str
) -> None:
    images = tmp_path / "images.json"
    if content is not None:
        images.write_text(content)
    code, _, err = cluster.cli("deploy", "--env", "staging", "--images", str(images))
    message = " ".join(err.split())
    assert code == 2, err
    assert f"--images {images}" in message and words in message, message
    assert "Traceback" not in err and "Unexpected error" not in err
    assert cluster.obj("Deployment", "backend") is None, "something was applied"
    assert images.exists() == (content is not None), "the file was changed"
