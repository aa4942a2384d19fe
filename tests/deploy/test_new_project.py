"""A new team's own project, `notes` (tests/fixtures/notes): written from the README and
`autodevhub schema` only, on autodevhub's template library. Three components (an API, a worker
from the same image, static pages), a migrate task that mounts the volume it prepares, a
secret, the project's own values checked by its own JSON Schema, and on Kubernetes a blue-green
API. It deploys ten times in a row on each target with a change in between (the project's
values, a volume mount, a probe, the image), and after every deploy `diff --exit-code` finds
nothing: no conflict, no drift, nothing applied that the next deploy would undo."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from autodevhub_cli.core.adapters.kube import Kube, ObjectRef
from tests.deploy import local_cluster
from tests.deploy.conftest import free_port
from tests.helpers import REPO, documents, run_cli, through_kube_proxy
from tests.images.conftest import BASE_IMAGES, REGISTRY, _engine_problem

FIXTURE = REPO / "tests" / "fixtures" / "notes"
API_UID = 20001
DEPLOYS = 10


def _copy(dest: Path) -> Path:
    shutil.copytree(FIXTURE, dest)
    return dest


def _cli(root: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    return run_cli(*args, "--project-dir", str(root), env=env)


def _change(root: Path, n: int) -> str:
    """The n-th change a team makes between deploys: its values, the blue-green API's volume
    mount, a probe, the image."""
    base = root / "environments" / "_base.yaml"
    text = base.read_text()
    kind = n % 4
    if kind == 0:
        text = re.sub(r"greeting: \S+", f"greeting: hello-{n}", text)
        what = f"values.greeting hello-{n}"
    elif kind == 1:
        pairs = [
            ("DATA_DIR: /data", "DATA_DIR: /srv/notes"),
            ("data: {path: /data}", "data: {path: /srv/notes}"),
        ]
        moved = pairs[0][1] in text
        for old, new in pairs:
            text = text.replace(new, old) if moved else text.replace(old, new)
        what = "the API's volume mount"
    elif kind == 2:
        period = "readiness: {path: /healthz, period_seconds: 2}"
        other = "readiness: {path: /healthz, period_seconds: 3}"
        text = text.replace(period, other) if period in text else text.replace(other, period)
        what = "the API's readiness probe"
    else:
        app = root / "api" / "app.py"
        app.write_text(app.read_text() + f"# change {n}\n")
        what = "the API's image"
    base.write_text(text)
    return what


def _deploy_ten_times(root: Path, env: dict[str, str], info: Any, *deploy_args: str) -> list[int]:
    """Deploy, check nothing is left to change, make the next change; ten times over. Returns
    the deploys that ran the migrate task."""
    ran = []
    for n in range(DEPLOYS):
        code, out, err = _cli(root, env, "deploy", "--env", *deploy_args, "-o", "json")
        assert code == 0, f"deploy {n + 1}: {err}"
        if "tasks" in json.loads(out)["release"]["timings"]:
            ran.append(n + 1)
        code, out, err = _cli(root, env, "diff", "--env", deploy_args[0], "--exit-code")
        assert (code, out) == (0, "No changes.\n"), f"diff after deploy {n + 1}: {out}{err}"
        served = info()
        assert served["schema"] == "2" and served["token"] == "set", served
        assert served["greeting"] == _greeting(root), served
        if n == DEPLOYS - 1:
            break  # the files stay as the last deploy had them
        what = _change(root, n)
        code, out, err = _cli(root, env, "diff", "--env", deploy_args[0], "--exit-code")
        if what == "the API's image":
            # `diff` compares the recorded build (it builds nothing) and says it is stale.
            assert code == 0 and "the sources of api changed since it was built" in err, err
        else:
            assert code == 1 and out.strip(), f"the diff of {what} before deploy {n + 2}"
    return ran


# The task runs on the first deploy and after each change of what it runs with: its volume
# mount and env (changes 2, 6 and 10) and its input files, the API's image (changes 4 and 8);
# a change of the project's values or of a probe skips it.
TASK_RUNS = [1, 3, 5, 7, 9]


def _greeting(root: Path) -> str:
    found = re.search(r"greeting: (\S+)", (root / "environments" / "_base.yaml").read_text())
    assert found
    return found.group(1)


# --- Compose ---------------------------------------------------------------------------------


@pytest.fixture()
def notes_on_compose(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    problem = _engine_problem()
    if problem:
        pytest.skip(problem)
    root = _copy(tmp_path / "notes")
    name = f"notes-{uuid.uuid4().hex[:6]}"
    env = {
        "AUTODEVHUB__REGISTRY__URL": f"{REGISTRY}/{name}",
        "AUTODEVHUB__COMPOSE__PROJECT_NAME": name,
        "AUTODEVHUB__COMPOSE__SECRETS_DIR": str(tmp_path / "secrets"),
        "AUTODEVHUB__BUILD__ARGS__BASE_IMAGE": BASE_IMAGES["PYTHON"],
        "AUTODEVHUB__COMPONENTS__API__EXPOSE__COMPOSE__HTTP": str(free_port()),
        "AUTODEVHUB__COMPONENTS__WEB__EXPOSE__COMPOSE__HTTP": str(free_port()),
        "NOTES_API_TOKEN": "tok-compose",
    }
    try:
        yield root, env
    finally:
        _cli(root, env, "down", "--env", "local", "--volumes")


def test_a_first_compose_deploy_without_its_secret_names_secrets_set(
    notes_on_compose: tuple[Path, dict[str, str]],
) -> None:
    root, env = notes_on_compose
    code, _, err = _cli(root, env, "doctor", "--env", "local")
    assert code != 0 and "Secret notes-secrets" in err
    code, _, err = _cli(root, env, "deploy", "--env", "local")
    assert code == 2, err
    assert "notes-secrets/api-token (no file" in err
    assert "autodevhub secrets set --env local --secret notes-secrets" in err
    assert "Traceback" not in err


def test_the_notes_project_deploys_ten_times_on_compose_with_nothing_left_to_diff(
    notes_on_compose: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    root, env = notes_on_compose
    values = tmp_path / "values.env"
    values.write_text("api-token=tok-compose\n")
    code, _, err = _cli(root, env, "secrets", "set", "--env", "local", "--from-file", str(values))
    assert code == 0, err
    port = env["AUTODEVHUB__COMPONENTS__API__EXPOSE__COMPOSE__HTTP"]

    def info() -> Any:
        return httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=10).json()

    assert _deploy_ten_times(root, env, info, "local") == TASK_RUNS
    # The migrate task prepared the volume before the first start; the notes each deploy's smoke
    # check wrote through the API are on it: every deploy kept the volume.
    assert info()["notes"] >= DEPLOYS


def test_a_secret_change_the_checks_refuse_is_undone_on_compose(
    notes_on_compose: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """`secrets set` keeps the previous value until the new one passes the checks, and puts it
    back when it does not: the API then still accepts the token its clients have."""
    root, env = notes_on_compose
    values = tmp_path / "values.env"
    values.write_text("api-token=tok-compose\n")
    assert _cli(root, env, "secrets", "set", "--env", "local", "--from-file", str(values))[0] == 0
    code, _, err = _cli(root, env, "deploy", "--env", "local")
    assert code == 0, err
    values.write_text("api-token=tok-wrong\n")
    code, _, err = _cli(root, env, "secrets", "set", "--env", "local", "--from-file", str(values))
    assert code == 3, err
    assert "The previous values are back and what uses them runs with them again" in err
    stored = (
        Path(env["AUTODEVHUB__COMPOSE__SECRETS_DIR"]) / env["AUTODEVHUB__COMPOSE__PROJECT_NAME"]
    )
    assert (stored / "notes-secrets" / "api-token").read_text() == "tok-compose"
    code, out, err = _cli(root, env, "smoke-test", "--env", "local")
    assert code == 0, out + err


# --- Kubernetes, on the real node --------------------------------------------------------------


@pytest.fixture()
def notes_on_the_real_node(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], str]]:
    from tests.deploy.test_real_node import _real_namespace, _real_node_kube

    kube, kubeconfig = _real_node_kube()
    root = _copy(tmp_path / "notes")
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, API_UID, API_UID)
    with _real_namespace(kube) as ns:
        volume = ObjectRef("v1", "PersistentVolume", "", f"{ns}-data")
        # The claim's storage comes only once the first deploy's migrate pod waits for it, as
        # a provisioner's volume would: the deploy must wait for the claim, not fail on it.
        waited = threading.Event()

        def provision() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not waited.is_set():
                for pod in kube.list_objects("v1", "Pod", ns, "autodevhub.io/task-of=api"):
                    conditions = (pod.get("status") or {}).get("conditions") or []
                    if any(c.get("reason") == "Unschedulable" for c in conditions):
                        waited.set()
                time.sleep(0.2)
            kube.create(local_cluster.host_path_volume(volume.name, data, ns, "data", "64Mi"))

        provisioner = threading.Thread(target=provision, daemon=True)
        provisioner.start()
        env = {
            "AUTODEVHUB__REGISTRY__URL": f"{REGISTRY}/notes-real",
            "AUTODEVHUB__BUILD__ARGS__BASE_IMAGE": BASE_IMAGES["PYTHON"],
            "AUTODEVHUB__NAMESPACE": ns,
            "AUTODEVHUB__KUBERNETES__KUBECONFIG": str(kubeconfig),
            "NOTES_API_TOKEN": "tok-kube",
        }
        try:
            yield root, env, ns
            assert waited.is_set(), "the first migrate pod never waited for its claim"
        finally:
            provisioner.join(timeout=130)
            kube.delete(volume)


def test_the_notes_project_deploys_ten_times_blue_green_on_the_real_node_without_a_conflict(
    notes_on_the_real_node: tuple[Path, dict[str, str], str], tmp_path: Path
) -> None:
    """The blue-green API renders no default-valued field (its readiness probe has no initial
    delay): Argo Rollouts writes the Rollout back, and no later apply conflicts with it."""
    root, env, ns = notes_on_the_real_node
    values = tmp_path / "values.env"
    values.write_text("api-token=tok-kube\n")
    code, _, err = _cli(root, env, "secrets", "set", "--env", "live", "--from-file", str(values))
    assert code == 0, err
    kubeconfig = env["AUTODEVHUB__KUBERNETES__KUBECONFIG"]

    def info() -> Any:
        pod = subprocess.run(
            ["kubectl", "--kubeconfig", kubeconfig, "-n", ns, "get", "svc", "api", "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
        )
        ip = json.loads(pod.stdout)["spec"]["clusterIP"]
        return through_kube_proxy(f"http://{ip}:8000/api/info").json()

    ran = _deploy_ten_times(root, env, info, "live", "--promote", "--timeout", "240")
    assert ran == TASK_RUNS
    # The last deploy skipped the task: its Job (named after what its pod runs with, which the
    # last change altered) was never applied, so it never ran.
    code, out, err = _cli(root, env, "render", "--env", "live")
    assert code == 0, err
    (job,) = [d for d in documents(out) if d["kind"] == "Job"]
    kube = Kube.connect(kubeconfig=kubeconfig)
    assert kube.get(ObjectRef("batch/v1", "Job", ns, job["metadata"]["name"])) is None
    # A deploy that changes nothing leaves no preview and says nothing of promoting one.
    code, out, err = _cli(root, env, "deploy", "--env", "live")
    assert code == 0, err
    assert "promote" not in out and "no preview to promote" in err, out + err
    code, out, err = _cli(root, env, "promote", "--env", "live")
    assert code == 0 and "is already active: nothing to promote" in out, out + err
    code, out, err = _cli(root, env, "history", "--env", "live", "-o", "json")
    assert code == 0, err
    releases = json.loads(out)["releases"]
    assert len(releases) >= DEPLOYS and releases[-1]["status"] != "preview", releases[-1]
    serving_job = job["metadata"]["name"]
    # A release whose checks fail runs its own task (its image changed), is rolled back, and the
    # rollback runs none: the serving release's task Job is still not there.
    _change(root, 3)
    code, out, err = _cli(
        root,
        env,
        "deploy",
        "--env",
        "live",
        "--promote",
        "--set",
        "smoke.checks.0.expect.fields.token=unset",
        "-o",
        "json",
    )
    assert code == 3, err
    assert "tasks" in json.loads(out)["release"]["timings"], "the failed release ran its task"
    assert kube.get(ObjectRef("batch/v1", "Job", ns, serving_job)) is None
    assert info()["token"] == "set", "the previous release serves"
    # A new token the checks refuse (the clients still send the old one) is undone.
    values.write_text("api-token=tok-wrong\n")
    code, _, err = _cli(root, env, "secrets", "set", "--env", "live", "--from-file", str(values))
    assert code == 3, err
    assert "The previous values are back" in err
    secret = kube.get(ObjectRef("v1", "Secret", ns, "notes-secrets")) or {}
    assert secret["data"]["api-token"] == base64.b64encode(b"tok-kube").decode()
    code, out, err = _cli(root, env, "smoke-test", "--env", "live")
    assert code == 0, out + err


def test_secrets_set_on_a_fresh_kubernetes_environment_creates_its_namespace(
    tmp_path: Path,
) -> None:
    from tests.deploy.test_real_node import _real_node_kube

    kube, kubeconfig = _real_node_kube()
    root = _copy(tmp_path / "notes")
    ns = f"fresh-{uuid.uuid4().hex[:6]}"
    env = {"AUTODEVHUB__NAMESPACE": ns, "AUTODEVHUB__KUBERNETES__KUBECONFIG": str(kubeconfig)}
    values = tmp_path / "values.env"
    values.write_text("api-token=tok-fresh\n")
    try:
        code, _, err = _cli(
            root, env, "secrets", "set", "--env", "live", "--from-file", str(values)
        )
        assert code == 0, err
        assert kube.get(ObjectRef("v1", "Namespace", "", ns)) is not None
        assert kube.get(ObjectRef("v1", "Secret", ns, "notes-secrets")) is not None
    finally:
        kube.delete(ObjectRef("v1", "Namespace", "", ns))
