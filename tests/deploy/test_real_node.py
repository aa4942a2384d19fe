"""The local cluster's real node (scripts/cluster/node.sh): containerd, kubelet, kube-proxy and
CoreDNS beside the kwok nodes. Where kwok only marks pods Running, here the project's own backend
image, built and pushed to the local registry, is pulled by digest and run: non-root with a
read-only root filesystem, its readiness probe called on its real port; its log read through the
API server and the kubelet; its Service answering from the host through kube-proxy, by name from
inside a pod through cluster DNS, and through the port-forward the smoke checks use.

A namespace reaches the node with two annotations (PodNodeSelector, PodTolerationRestriction):
the node is tainted, so every other test's pods stay on the kwok nodes.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from autodevhub_cli.core.adapters.kube import Kube, ObjectRef
from autodevhub_cli.core.adapters.port_forward import forward
from tests.deploy import local_cluster
from tests.helpers import copy_project, run_cli, through_kube_proxy
from tests.images.conftest import BASE_IMAGES, REGISTRY

pytestmark = [pytest.mark.k8s, pytest.mark.docker]

NODE = "autodevhub-node"
REAL_NODE_ANNOTATIONS = {
    "scheduler.alpha.kubernetes.io/node-selector": "autodevhub.io/node=real",
    "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps(
        [{"key": "autodevhub.io/real-node", "operator": "Exists", "effect": "NoSchedule"}]
    ),
}


def _real_node_kube() -> tuple[Kube, Path]:
    """The control plane, with its real node Ready (else the test is skipped, saying why)."""
    kube, kubeconfig = local_cluster.connect_with_engine()
    node = kube.get(ObjectRef("v1", "Node", "", NODE)) or {}
    ready = [
        c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"
    ]
    if not ready or ready[0].get("status") != "True":
        pytest.skip(f"no real node {NODE} Ready: run `bash scripts/local-cluster.sh up`")
    return kube, Path(kubeconfig)


OWNER = "autodevhub-test/owner"
TEST_NAMESPACES = "autodevhub-test/real-node=true"


def _sweep_leftovers(kube: Kube) -> None:
    """Delete the real-node namespaces of a test run that no longer runs (killed before its
    teardown): their pods keep their CPU requests on the node, the cluster's state outlives a
    run, and the next run's deploys would not fit (CI saw `Insufficient cpu` this way). A
    namespace of a run still going on this machine (another checkout's tests) is left alone."""
    for item in kube.list_objects("v1", "Namespace", None, TEST_NAMESPACES):
        meta = item["metadata"]
        if (meta.get("annotations") or {}).get(OWNER) in _running():
            continue
        kube.delete(ObjectRef("v1", "Namespace", "", meta["name"]))
        _wait_pods_gone(kube, meta["name"])


def _process_id(pid: int) -> str:
    """A process named so that a reused pid does not pass for it: pid and start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return f"{pid}:{stat.rsplit(')', 1)[1].split()[19]}"


def _running() -> set[str]:
    return {_process_id(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()} - {""}


@contextmanager
def _real_namespace(kube: Kube) -> Iterator[str]:
    """A namespace whose pods run on the real node, deleted afterwards with its pods gone."""
    _sweep_leftovers(kube)
    ns = f"real-{uuid.uuid4().hex[:6]}"
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": ns,
                "labels": {"autodevhub-test/real-node": "true"},
                "annotations": {**REAL_NODE_ANNOTATIONS, OWNER: _process_id(os.getpid())},
            },
        }
    )
    try:
        yield ns
    finally:
        kube.delete(ObjectRef("v1", "Namespace", "", ns))
        _wait_pods_gone(kube, ns)


def _wait_pods_gone(kube: Kube, ns: str, timeout: float = 180.0) -> None:
    """Wait until the deleted namespace's pods are gone from the node: a terminating pod still
    holds its CPU request, and the next test's pods would find the real node full (CI saw
    `Insufficient cpu` for a staging deploy right after the notes project's namespace was
    deleted)."""
    deadline = time.monotonic() + timeout
    left: list[str] = []
    while time.monotonic() < deadline:
        left = [p["metadata"]["name"] for p in kube.list_objects("v1", "Pod", ns)]
        if not left:
            return
        time.sleep(0.5)
    raise AssertionError(
        f"pods of the deleted namespace {ns} still there after {timeout:.0f}s: {left}"
    )


@pytest.fixture()
def real_node() -> Iterator[tuple[Kube, str, Path]]:
    """A namespace whose pods run on the real node: (connection, namespace, kubeconfig)."""
    kube, kubeconfig = _real_node_kube()
    with _real_namespace(kube) as ns:
        yield kube, ns, kubeconfig


def _built_backend(tmp_path: Path) -> str:
    """The project's backend image, built and pushed to the local registry: its ref by digest."""
    root = copy_project(tmp_path / "project", with_service=True)
    env = {f"AUTODEVHUB__BUILD__ARGS__{k}_IMAGE": v for k, v in BASE_IMAGES.items()}
    env["AUTODEVHUB__REGISTRY__URL"] = f"{REGISTRY}/real-node"
    code, out, err = run_cli(
        "build",
        "--env",
        "dev",
        "--push",
        "--only",
        "backend",
        "-o",
        "json",
        "--project-dir",
        str(root),
        env=env,
    )
    assert code == 0, err
    (image,) = [i for i in json.loads(out)["images"] if i["name"] == "backend"]
    assert image["digest"], image
    return f"{image['repository']}@{image['digest']}"


def _pod(ns: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "api", "namespace": ns, "labels": {"app": "api"}},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "api",
                    "image": image,
                    "env": [{"name": "DATABASE_URL", "value": "sqlite:////tmp/app.db"}],
                    "ports": [{"name": "http", "containerPort": 8000}],
                    "readinessProbe": {
                        "httpGet": {"path": "/readyz", "port": "http"},
                        "periodSeconds": 1,
                    },
                    "securityContext": {
                        "readOnlyRootFilesystem": True,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }


def test_the_backend_image_runs_on_the_real_node(
    real_node: tuple[Kube, str, Path], tmp_path: Path
) -> None:
    kube, ns, kubeconfig = real_node
    image = _built_backend(tmp_path)
    kube.create(_pod(ns, image))
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "api", "namespace": ns},
            "spec": {"selector": {"app": "api"}, "ports": [{"port": 8000, "targetPort": "http"}]},
        }
    )
    kubectl = ["kubectl", "--kubeconfig", str(kubeconfig), "-n", ns]
    waited = subprocess.run(
        [*kubectl, "wait", "--for=condition=Ready", "pod/api", "--timeout=120s"],
        capture_output=True,
        text=True,
    )
    pod = kube.get(ObjectRef("v1", "Pod", ns, "api")) or {}
    assert waited.returncode == 0, (waited.stderr, pod.get("status"))
    assert pod["spec"]["nodeName"] == NODE
    status = pod["status"]["containerStatuses"][0]
    assert status["imageID"].endswith(image.rsplit("@", 1)[1]), "pulled by its digest"
    assert pod["status"]["podIP"].startswith("10.244.0.")
    # Its log, through the API server and the kubelet.
    log = kube.pod_log(ns, "api", "api", tail=50)
    assert "Uvicorn running" in log or "Application startup complete" in log, log
    # The Service from the host (kube-proxy's rules), by name from inside the pod (CoreDNS),
    # and through port-forward (what smoke.port_forward uses).
    service = kube.get(ObjectRef("v1", "Service", ns, "api")) or {}
    answer = through_kube_proxy(f"http://{service['spec']['clusterIP']}:8000/healthz")
    assert answer.status_code == 200, answer.text
    lookup = subprocess.run(
        [
            *kubectl,
            "exec",
            "api",
            "--",
            "python3",
            "-c",
            f"import socket; print(socket.gethostbyname('api.{ns}.svc.cluster.local'))",
        ],
        capture_output=True,
        text=True,
    )
    assert lookup.stdout.strip() == service["spec"]["clusterIP"], lookup.stderr
    with forward("api", 8000, ns, kubeconfig=str(kubeconfig)) as url:
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200


# --- this project's staging, deployed by autodevhub onto the real node ------------------------

POD_GATEWAY = "10.244.0.1"  # the node bridge's address: the host, as the pods see it


@contextmanager
def _staging_project(
    kube: Kube, ns: str, kubeconfig: Path, folder: Path
) -> Iterator[dict[str, Any]]:
    """A copy of the project whose staging deploys into the real-node namespace `ns`: its
    database a role and database of their own on the host's PostgreSQL (reached from the pods
    on the bridge's gateway), the model a fake Anthropic API on the host, its Secret written
    with `autodevhub secrets set`, the checks reaching the pods through port-forward."""
    import secrets as tokens

    from tests.service.fake_anthropic import FakeMessagesAPI

    role = f"stg_{uuid.uuid4().hex[:8]}"
    password = tokens.token_urlsafe(24)
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc"]
    subprocess.run([*psql, f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"], check=True)
    subprocess.run([*psql, f"CREATE DATABASE {role} OWNER {role}"], check=True)
    model = FakeMessagesAPI(host=POD_GATEWAY).start()
    assert model.server is not None
    port = model.server.server_address[1]
    root = copy_project(folder / "staging", with_service=True)
    api_key = "key-" + tokens.token_hex(16)
    env = {
        **{f"AUTODEVHUB__BUILD__ARGS__{k}_IMAGE": v for k, v in BASE_IMAGES.items()},
        "AUTODEVHUB__REGISTRY__URL": f"{REGISTRY}/real-staging",
        "AUTODEVHUB__NAMESPACE": ns,
        "AUTODEVHUB__KUBERNETES__KUBECONFIG": str(kubeconfig),
        "AUTODEVHUB__SMOKE__PORT_FORWARD": "true",
        "AUTODEVHUB__COMPONENTS__WORKER__ENV__ANTHROPIC_BASE_URL": (f"http://{POD_GATEWAY}:{port}"),
        "SMOKE_API_KEY": api_key,
    }
    values = folder / "secrets.env"
    values.write_text(
        f"database-url=postgresql+psycopg://{role}:{password}@{POD_GATEWAY}:5432/{role}\n"
        f"anthropic-api-key=sk-ant-{tokens.token_hex(24)}\n"
        f"api-keys={api_key}\n"
    )
    code, _, err = run_cli(
        "secrets",
        "set",
        "--env",
        "staging",
        "--from-file",
        str(values),
        "--project-dir",
        str(root),
        env=env,
    )
    assert code == 0, err
    try:
        yield {
            "root": root,
            "env": env,
            "kube": kube,
            "ns": ns,
            "model": model,
            "secrets": values,
            "api_key": api_key,
            "database_url": f"postgresql://{role}:{password}@127.0.0.1:5432/{role}",
            "kubeconfig": kubeconfig,
        }
    finally:
        model.stop()
        kube.delete(ObjectRef("v1", "Namespace", "", ns))
        subprocess.run([*psql, f"DROP DATABASE IF EXISTS {role} WITH (FORCE)"], check=False)
        subprocess.run([*psql, f"DROP ROLE IF EXISTS {role}"], check=False)


@pytest.fixture()
def project_on_real_node(
    real_node: tuple[Kube, str, Path], tmp_path: Path
) -> Iterator[dict[str, Any]]:
    """This project's staging, ready to deploy into a real-node namespace of its own."""
    kube, ns, kubeconfig = real_node
    with _staging_project(kube, ns, kubeconfig, tmp_path) as project:
        yield project


def _backup_image() -> str:
    """The backup CronJob's stand-in image (Debian's pg_dump), pushed: its ref by digest."""
    local = "autodevhub-ci/postgresql-client:15-bookworm"
    remote = f"{REGISTRY}/{local}"
    for command in (["docker", "tag", local, remote], ["docker", "push", "-q", remote]):
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 0, (
            f"{command}: {done.stderr} (run scripts/ci/provision-docker.sh)"
        )
    digests = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{json .RepoDigests}}", remote],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (pinned,) = [d for d in json.loads(digests) if d.startswith(f"{REGISTRY}/")]
    return pinned


BACKUP_UID = 10070  # backups.run_as_user


@pytest.fixture(scope="module")
def staging_on_real_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """This project's staging deployed once onto the real node by `autodevhub deploy`, shared
    by the tests that only look at it (the last one rotates a secret): its backups claim bound
    to a folder of the host (a hostPath PersistentVolume made for it, as on a cluster without a
    storage provisioner), the backup job's image a stand-in pinned by digest."""
    kube, kubeconfig = _real_node_kube()
    folder = tmp_path_factory.mktemp("staging-real")
    backups = folder / "backups"
    backups.mkdir()
    os.chown(backups, BACKUP_UID, BACKUP_UID)
    backups.chmod(0o700)
    with _real_namespace(kube) as ns, _staging_project(kube, ns, kubeconfig, folder) as s:
        volume = ObjectRef("v1", "PersistentVolume", "", f"{ns}-backups")
        kube.create(local_cluster.host_path_volume(volume.name, backups, ns, "backups", "5Gi"))
        s["env"]["AUTODEVHUB__BACKUPS__IMAGE"] = _backup_image()
        try:
            code, out, err = run_cli(
                "deploy",
                "--env",
                "staging",
                "--timeout",
                "240",
                "-o",
                "json",
                "--project-dir",
                str(s["root"]),
                env=s["env"],
            )
            assert code == 0, err
            yield {**s, "deployed": json.loads(out), "backups": backups}
        finally:
            kube.delete(volume)


@pytest.mark.parametrize(
    ("what", "sets", "words"),
    [
        (
            "an image that exits at start",
            [
                'components.backend.command=["python3", "-c", '
                "\"import sys; print('boom: no config'); sys.exit(3)\"]"
            ],
            ["CrashLoopBackOff", "boom: no config"],
        ),
        (
            "a readiness path that fails",
            ["components.backend.probes.readiness.path=/no-such-readiness"],
            ["failing its readiness probe", "/no-such-readiness", "statuscode: 404"],
        ),
        (
            "an image that cannot be pulled",
            ["components.backend.image.digest=sha256:" + "0" * 64],
            ["ErrImagePull", "sha256:" + "0" * 64],
        ),
    ],
    ids=["exits", "not-ready", "no-image"],
)
def test_a_broken_release_on_the_real_node_is_diagnosed_and_rolled_back(
    project_on_real_node: dict[str, Any], what: str, sets: list[str], words: list[str]
) -> None:
    """Real pods fail for real: the deploy names the pod, the reason and the last log lines
    (kwok could never show them), rolls back, and the good release's pods serve again."""
    s = project_on_real_node
    kube, ns = s["kube"], s["ns"]
    args = ["--project-dir", str(s["root"]), "--timeout", "240"]
    code, out, err = run_cli("deploy", "--env", "staging", "-o", "json", *args, env=s["env"])
    assert code == 0, err
    good = json.loads(out)["release"]["id"]
    set_args = [word for value in sets for word in ("--set", value)]
    code, _, err = run_cli(
        "deploy",
        "--env",
        "staging",
        "--skip-build",
        *args[:2],
        "--timeout",
        "45",
        *set_args,
        env=s["env"],
    )
    message = " ".join(err.split())
    assert code == 1, f"{what}: {err}"
    assert "pod backend-" in message, message
    for word in words:
        assert word in message, f"{what}: {word!r} not in {message}"
    assert f"Rolled back to release {good}" in message and "passes its smoke checks" in message
    deployment = kube.get(ObjectRef("apps/v1", "Deployment", ns, "backend")) or {}
    status = deployment.get("status") or {}
    assert status.get("readyReplicas") == deployment["spec"]["replicas"], status


class Load:
    """Bounded load on a URL: `rate` GETs a second from a thread, each with an X-Request-ID the
    service logs, until stopped (at most `limit` seconds). Every answer is kept: its id, time,
    status or the error."""

    def __init__(self, url: str, rate: float = 20, limit: float = 600) -> None:
        import threading

        self.url, self.rate, self.limit = url, rate, limit
        self.sent: list[tuple[str, float, int | str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        # A connection per request, as many clients behind a load balancer: a kept-alive one
        # stays on the pod it reached, whatever the Service selects later.
        with httpx.Client(timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            n = 0
            while not self._stop.is_set() and time.monotonic() - started < self.limit:
                request_id = uuid.uuid4().hex
                try:
                    answer = client.get(self.url, headers={"X-Request-ID": request_id})
                    result: int | str = answer.status_code
                except httpx.HTTPError as exc:
                    result = type(exc).__name__
                self.sent.append((request_id, time.monotonic(), result))
                n += 1
                time.sleep(max(0.0, started + n / self.rate - time.monotonic()))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def failed(self) -> list[tuple[str, float, int | str]]:
        return [s for s in self.sent if s[2] != 200]


def _answered_by(kube: Kube, ns: str, seen: dict[str, str]) -> None:
    """Add request id -> the release (its RELEASE_MARK) of the backend pod that logged it."""
    for pod in kube.list_objects("v1", "Pod", ns, "app.kubernetes.io/component=backend"):
        container = pod["spec"]["containers"][0]
        marks = [e.get("value") for e in container.get("env") or [] if e["name"] == "RELEASE_MARK"]
        if not marks or pod["metadata"]["name"].startswith("backend-migrate"):
            continue
        version = str(marks[0])
        log = kube.pod_log(ns, pod["metadata"]["name"], "backend", tail=100000)
        for line in log.splitlines():
            if '"request_id"' in line:
                try:
                    seen[json.loads(line)["request_id"]] = version
                except (ValueError, KeyError):
                    continue


def test_blue_green_on_the_real_node_keeps_every_request_on_the_active_version(
    project_on_real_node: dict[str, Any],
) -> None:
    """prod's backend is an Argo Rollouts blue-green Rollout: under 20 requests a second to the
    active Service, a second release waits as the preview (checked through its own Service)
    while only the first answers, is promoted, and a third that fails its checks is aborted;
    no request fails, and until the promotion every one is answered by the active version."""
    s = project_on_real_node
    kube, ns = s["kube"], s["ns"]
    env = {**s["env"]}
    args = ["--project-dir", str(s["root"]), "--timeout", "240"]
    code, _, err = run_cli(
        "secrets", "set", "--env", "prod", "--from-file", str(s["secrets"]), *args[:2], env=env
    )
    assert code == 0, err

    def deploy(*more: str) -> tuple[int, str, str]:
        return run_cli("deploy", "--env", "prod", *args, *more, env=env)

    code, _, err = deploy("--promote", "--set", "components.backend.env.RELEASE_MARK=one")
    assert code == 0, err
    service = kube.get(ObjectRef("v1", "Service", ns, "backend")) or {}
    seen: dict[str, str] = {}
    url = f"http://{service['spec']['clusterIP']}:8000/api/stories?limit=1"
    with Load(url) as load:
        time.sleep(3)
        code, _, err = deploy("--skip-build", "--set", "components.backend.env.RELEASE_MARK=two")
        assert code == 0 and "is up as the preview" in err, err
        time.sleep(3)
        before_promotion = len(load.sent)
        _answered_by(kube, ns, seen)
        code, _, err = run_cli("promote", "--env", "prod", *args, env=env)
        assert code == 0, err
        _answered_by(kube, ns, seen)  # the first version's pods stay 30 s after promotion
        time.sleep(3)  # kube-proxy's rules follow the Service's new selector within a second
        after_promotion = len(load.sent)
        code, _, err = deploy(
            "--skip-build",
            "--set",
            "components.backend.env.RELEASE_MARK=three",
            "--set",
            BROKEN_PREVIEW_CHECK,
        )
        assert code == 3 and "aborting the rollout" in err, err
        time.sleep(3)
    _answered_by(kube, ns, seen)
    print(
        f"blue-green under load: {len(load.sent)} requests in "
        f"{load.sent[-1][1] - load.sent[0][1]:.0f} s, {len(load.failed())} failed; "
        f"{before_promotion} before the promotion, {len(load.sent) - after_promotion} after it"
    )
    assert len(load.sent) > 100, len(load.sent)
    assert load.failed() == [], load.failed()[:5]
    early = [seen.get(rid) for rid, _, _ in load.sent[:before_promotion]]
    assert set(early) == {"one"}, f"before the promotion answered by {set(early)}"
    late = [seen.get(rid) for rid, _, _ in load.sent[after_promotion:]]
    assert set(late) == {"two"}, f"after the promotion answered by {set(late)}"


BROKEN_PREVIEW_CHECK = (
    "smoke.checks=[{name: broken, component: backend, path: /api/stories, "
    "expect: {contains: text-no-answer-has}}]"
)


# --- staging deployed once: what a user looks at after a deploy -------------------------------


def test_staging_runs_on_the_real_node(staging_on_real_node: dict[str, Any]) -> None:
    """`autodevhub deploy --env staging` of the real images onto the real node, with no smoke
    URL overrides: the migrate Job migrates PostgreSQL, the pods pass their probes, and the
    project's checks reach the pods through port-forward, the story round trip included (the
    API takes the request, the worker generates through the model, the API answers it)."""
    s = staging_on_real_node
    kube, ns = s["kube"], s["ns"]
    result = s["deployed"]
    assert result["release"]["status"] == "deployed"
    checks = {c["name"]: c["ok"] for c in result["smoke"]["checks"]}
    assert checks.get("story round trip") and checks.get("frontend page"), checks
    assert all(checks.values()), checks
    pods = kube.list_objects("v1", "Pod", ns)
    assert pods and {p["spec"]["nodeName"] for p in pods} == {NODE}
    job = next(p for p in pods if p["metadata"]["name"].startswith("backend-migrate"))
    assert job["status"]["phase"] == "Succeeded"
    assert s["model"].calls, "the worker never asked the model"
    # The round trip's story set was generated by the worker's process, not by an API pod.
    logs = {
        p["metadata"]["name"]: kube.pod_log(ns, p["metadata"]["name"], None, tail=100000)
        for p in pods
        if p["status"]["phase"] == "Running"
    }
    generated = {name for name, text in logs.items() if '"msg": "generation done"' in text}
    assert generated and all(name.startswith("worker-") for name in generated), generated


def test_the_frontend_serves_the_page_and_proxies_only_the_api(
    staging_on_real_node: dict[str, Any],
) -> None:
    """The frontend's nginx, on its real port behind its Service: the page, and /api/ handed to
    the backend; the backend's own endpoints (metrics, readiness, API docs) are not reachable
    through it, however the path is spelled."""
    s = staging_on_real_node
    service = s["kube"].get(ObjectRef("v1", "Service", s["ns"], "frontend")) or {}
    base = f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}"
    with httpx.Client(base_url=base, timeout=10) as client:
        page = client.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"], page.text
        assert page.headers["x-frame-options"] == "DENY"
        # /api/ reaches the backend: its list, and its own 401 for a write without a key.
        listed = client.get("/api/stories?limit=1")
        assert listed.status_code == 200 and "items" in listed.json(), listed.text
        refused = client.post("/api/stories", json={"feature": "export to CSV"})
        assert refused.status_code == 401 and refused.json()["detail"], refused.text
        for path in (
            "/metrics",
            "/readyz",
            "/docs",
            "/openapi.json",
            "/api/../metrics",
            "/api/%2e%2e/metrics",
            "/api/..%2fmetrics",
            "/assets/../metrics",
        ):
            answer = client.get(path)
            body = answer.text
            assert "# TYPE" not in body and "http_request" not in body, (path, body[:200])
            assert '"openapi"' not in body and "swagger" not in body.lower(), (path, body[:200])
            assert answer.headers.get("content-type", "").split(";")[0] != "application/json" or (
                answer.status_code >= 400
            ), (path, answer.status_code, body[:200])


def _wait_job(kube: Kube, ns: str, name: str, seconds: float = 180) -> dict[str, Any]:
    """The Job once it succeeded; fails with its pods' state and logs if it failed or is late."""
    deadline = time.monotonic() + seconds
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = kube.get(ObjectRef("batch/v1", "Job", ns, name)) or {}
        status = job.get("status") or {}
        if status.get("succeeded"):
            return job
        if status.get("failed"):
            break
        time.sleep(1)
    pods = kube.list_objects("v1", "Pod", ns, f"job-name={name}")
    logs = {
        p["metadata"]["name"]: kube.pod_log(ns, p["metadata"]["name"], None, tail=20) for p in pods
    }
    raise AssertionError(
        f"Job {name}: {job.get('status')}; pods {[p.get('status') for p in pods]}; logs {logs}"
    )


def test_a_backup_job_from_the_cronjob_writes_a_dump_that_db_restore_restores(
    staging_on_real_node: dict[str, Any],
) -> None:
    """The CronJob's pod, non-root with a read-only root filesystem, dumps the staging database
    (reached from the pod, its password from the mounted Secret) into the backups volume, with
    the checksum beside it; `autodevhub db restore` checks it and restores it into an empty
    database, which then holds every row the staging database held."""
    from autodevhub_cli.core.backup import row_counts

    s = staging_on_real_node
    kube, ns = s["kube"], s["ns"]
    # Something to back up: two story sets, written through the API (the smoke checks' own
    # story set is deleted once checked).
    service = kube.get(ObjectRef("v1", "Service", ns, "backend")) or {}
    for feature in ("export the board to CSV", "invite a teammate by email"):
        written = httpx.post(
            f"http://{service['spec']['clusterIP']}:8000/api/stories",
            json={"feature": feature},
            headers={"Authorization": f"Bearer {s['api_key']}"},
            timeout=10,
        )
        assert written.status_code in (200, 201, 202), written.text
    cronjob = kube.get(ObjectRef("batch/v1", "CronJob", ns, "backup")) or {}
    assert cronjob, "the staging release has no backup CronJob"
    kube.create(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "backup-now",
                "namespace": ns,
                "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
            },
            "spec": cronjob["spec"]["jobTemplate"]["spec"],
        }
    )
    _wait_job(kube, ns, "backup-now")
    (pod,) = kube.list_objects("v1", "Pod", ns, "job-name=backup-now")
    assert pod["spec"]["nodeName"] == NODE
    assert "done" in kube.pod_log(ns, pod["metadata"]["name"], None, tail=5)
    (dump,) = s["backups"].glob("autodevhub-staging-*.dump")
    assert dump.with_name(dump.name + ".sha256").is_file()
    assert dump.stat().st_uid == BACKUP_UID and dump.stat().st_mode & 0o077 == 0
    source = row_counts(s["database_url"])
    assert source.get("story_sets", 0) >= 2, source
    restored = f"restored_{uuid.uuid4().hex[:8]}"
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc"]
    subprocess.run([*psql, f"CREATE DATABASE {restored}"], check=True)
    try:
        url = f"postgresql://postgres@127.0.0.1:5432/{restored}"
        code, out, err = run_cli(
            "db",
            "restore",
            "--env",
            "staging",
            "--from",
            str(dump),
            "--database-url",
            url,
            "-o",
            "json",
            "--project-dir",
            str(s["root"]),
        )
        assert code == 0, err
        assert (
            json.loads(out)["sha256"]
            == dump.with_name(dump.name + ".sha256").read_text().split()[0]
        )
        assert row_counts(url) == source
    finally:
        subprocess.run([*psql, f"DROP DATABASE IF EXISTS {restored} WITH (FORCE)"], check=False)


def test_secrets_rotate_restarts_the_real_pods_and_they_read_the_new_value(
    staging_on_real_node: dict[str, Any],
) -> None:
    """`secrets rotate api-keys`: the pods that mount the Secret are replaced, and the new ones
    read the new file: the new key is accepted, the old one refused (the last test here: it
    changes the deployed staging)."""
    import secrets as tokens

    s = staging_on_real_node
    kube, ns = s["kube"], s["ns"]

    def backend_pods() -> set[str]:
        pods = kube.list_objects("v1", "Pod", ns, "app.kubernetes.io/component=backend")
        # Running and not on its way out: a replaced pod stays Running while it terminates.
        return {
            p["metadata"]["name"]
            for p in pods
            if p["status"].get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")
            and "migrate" not in p["metadata"]["name"]
        }

    before = backend_pods()
    old_key, new_key = s["api_key"], "key-" + tokens.token_hex(16)
    value = s["backups"].parent / "new-api-keys"
    value.write_text(new_key)
    code, _, err = run_cli(
        "secrets",
        "rotate",
        "api-keys",
        "--env",
        "staging",
        "--from-file",
        str(value),
        "--timeout",
        "240",
        "--project-dir",
        str(s["root"]),
        env={**s["env"], "SMOKE_API_KEY": new_key},
    )
    assert code == 0, err
    after = backend_pods()
    assert after and not after & before, (before, after)
    service = kube.get(ObjectRef("v1", "Service", ns, "backend")) or {}
    url = f"http://{service['spec']['clusterIP']}:8000/api/stories"

    def write(key: str) -> int:
        body = {"feature": "export the board to CSV"}
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.post(url, json=body, headers=headers, timeout=10).status_code

    assert write(old_key) == 401
    assert write(new_key) in (200, 201, 202)
