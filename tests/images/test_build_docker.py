"""`autodevhub build` against the real Docker engine and registry: build, run, push, reuse, faults."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import run_cli
from tests.images.conftest import REGISTRY, engine_calls

pytestmark = pytest.mark.docker


def _build(project: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, Any, str]:
    code, out, err = run_cli(
        "build", "--env", "dev", "--output", "json", "--project-dir", str(project), *args, env=env
    )
    return code, (json.loads(out) if code == 0 else None), err


@pytest.fixture(scope="module")
def first_build(build_project: Path, build_env: dict[str, str]) -> dict[str, Any]:
    code, result, err = _build(build_project, "--push")
    assert code == 0, err
    return result


def _images(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {image["name"]: image for image in result["images"]}


def test_both_images_pushed_with_digests(first_build: dict[str, Any]) -> None:
    images = _images(first_build)
    # The worker builds nothing: it runs the backend's image, and the record says so.
    assert set(images) == {"backend", "worker", "frontend"}
    worker = images.pop("worker")
    assert worker["action"] == "shared with backend"
    assert (worker["tag"], worker["digest"]) == (
        images["backend"]["tag"],
        images["backend"]["digest"],
    )
    catalog = httpx.get(f"http://{REGISTRY}/v2/_catalog?n=1000").json()["repositories"]
    for image in images.values():
        assert image["tag"].startswith("c-") and image["tag"] != "latest"
        assert image["digest"].startswith("sha256:")
        assert image["ref"].endswith("@" + image["digest"])
        repo = image["repository"].split("/", 1)[1]
        assert repo in catalog
        head = httpx.head(
            f"http://{REGISTRY}/v2/{repo}/manifests/{image['tag']}",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        assert head.headers["Docker-Content-Digest"] == image["digest"]
    assert images["backend"]["size_bytes"] > 0


def test_build_is_recorded(build_project: Path, first_build: dict[str, Any]) -> None:
    record = json.loads((build_project / ".autodevhub" / "builds" / "dev.json").read_text())
    assert _images(record)["backend"]["digest"] == _images(first_build)["backend"]["digest"]


def _wait_http(url: str, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer 200 within {timeout}s ({last})")


def test_images_run_and_serve_a_story_round_trip(
    docker_client: Any, first_build: dict[str, Any]
) -> None:
    images = _images(first_build)
    name = f"adh-test-{uuid.uuid4().hex[:6]}"
    network = docker_client.networks.create(name)
    volume = docker_client.volumes.create(name)
    started = []
    try:
        backend = docker_client.containers.run(
            f"{images['backend']['repository']}:{images['backend']['tag']}",
            command=["sh", "-c", "python3 -m service migrate && exec python3 -m service"],
            detach=True,
            name=f"{name}-backend",
            network=name,
            read_only=True,
            tmpfs={"/tmp": ""},
            volumes={name: {"bind": "/data", "mode": "rw"}},
            environment={
                "APP_ENV": "dev",
                "WORKERS": "1",
                "DATABASE_URL": "sqlite:////data/autodevhub.db",
            },
            ports={"8000/tcp": ("127.0.0.1", None)},
        )
        started.append(backend)
        network.disconnect(backend)
        network.connect(backend, aliases=["backend"])
        frontend = docker_client.containers.run(
            f"{images['frontend']['repository']}:{images['frontend']['tag']}",
            detach=True,
            name=f"{name}-frontend",
            network=name,
            read_only=True,
            tmpfs={"/tmp": ""},
            # An unprivileged port: no sysctl, no capability.
            ports={"8080/tcp": ("127.0.0.1", None)},
        )
        started.append(frontend)
        backend.reload()
        frontend.reload()
        api = f"http://127.0.0.1:{backend.ports['8000/tcp'][0]['HostPort']}"
        web = f"http://127.0.0.1:{frontend.ports['8080/tcp'][0]['HostPort']}"
        assert _wait_http(f"{api}/healthz").json() == {"status": "ok"}
        assert backend.attrs["Config"]["User"].startswith("10001")
        # The frontend serves the page and proxies /api to the backend.
        page = _wait_http(f"{web}/")
        assert "<html" in page.text.lower()
        created = httpx.post(f"{web}/api/stories", json={"feature": "Export invoices as PDF"})
        assert created.status_code == 202, created.text
        story_id = created.json()["id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = httpx.get(f"{api}/api/stories/{story_id}").json()
            if got["status"] in ("done", "failed"):
                break
            time.sleep(0.3)
        assert got["status"] == "done", got
        assert got["generator"] == "offline"
        assert got["stories"] and got["stories"][0]["text"].startswith("As a")
        listed = httpx.get(f"{web}/api/stories").json()
        assert story_id in [item["id"] for item in listed["items"]]
    finally:
        for container in started:
            container.remove(force=True)
        network.remove()
        volume.remove(force=True)


def test_noop_rebuild_only_inspects_the_base_images(
    build_project: Path, first_build: dict[str, Any]
) -> None:
    # With nothing changed the registry already has both content tags: the engine is asked
    # only what each base image is (part of the tag), once each; nothing is pulled or built.
    with engine_calls() as calls:
        code, result, err = _build(build_project, "--push")
    assert code == 0, err
    images = _images(result)
    assert {n: i["action"] for n, i in images.items()} == {
        "backend": "reused",
        "frontend": "reused",
        "worker": "shared with backend",
    }
    assert images["backend"]["digest"] == _images(first_build)["backend"]["digest"]
    bases = sorted({b["reference"] for i in images.values() for b in i["bases"]})
    asked = sorted(c.removeprefix("docker: inspect ") for c in calls if "connect" not in c)
    assert asked == bases, calls


def test_one_backend_change_rebuilds_only_the_backend_and_reuses_dependency_layers(
    build_project: Path, first_build: dict[str, Any]
) -> None:
    source = build_project / "service" / "logs.py"
    # A change no earlier run made: BuildKit's cache is content-addressed across projects.
    source.write_text(source.read_text() + f"\n# a change {uuid.uuid4().hex}\n")
    code, out, err = run_cli("build", "--env", "dev", "-v", "--project-dir", str(build_project))
    assert code == 0, err
    lines = out.splitlines()
    assert any(line.startswith("backend") and " built " in line for line in lines), out
    assert any(line.startswith("frontend") and " reused " in line for line in lines), out
    steps, cached = _buildkit_steps(err, "backend")
    for step in (
        "COPY service/requirements.lock",
        "COPY wheelhouse/",
        "RUN python3 -m venv",
        "COPY --from=builder /opt/venv",
    ):
        assert any(step in text for text in cached), f"{step} not from the cache: {steps}"
    assert not any("COPY service/ /app/service/" in text for text in cached), steps


def _buildkit_steps(log: str, image: str) -> tuple[list[str], list[str]]:
    """Every step of `image`'s build in a -v log, and those BuildKit took from its cache."""
    steps: dict[str, str] = {}
    cached: list[str] = []
    for line in log.splitlines():
        match = re.search(rf"\b{image}: +#(\d+) (.*)$", line)
        if not match:
            continue
        number, text = match.groups()
        if text.startswith("["):
            steps[number] = text
        elif text.strip() == "CACHED" and number in steps:
            cached.append(steps[number])
    return list(steps.values()), cached


def test_unknown_only_name(build_project: Path, build_env: dict[str, str]) -> None:
    code, _, err = _build(build_project, "--only", "database")
    assert code == 2
    assert "Unknown image 'database'" in err and "backend, frontend" in err


def test_no_engine_says_how_to_start_one(build_project: Path, build_env: dict[str, str]) -> None:
    code, _, err = _build(build_project, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert code == 1
    assert "No Docker engine answers at unix:///nonexistent/docker.sock" in err
    assert "dockerd" in err and "Traceback" not in err


@pytest.mark.parametrize(("builder", "step"), [("buildkit", "[build "), ("classic", "Step ")])
def test_failing_dockerfile_step_names_image_step_and_log(
    build_project: Path, build_env: dict[str, str], builder: str, step: str
) -> None:
    dockerfile = build_project / "service" / "web" / "Dockerfile"
    original = dockerfile.read_text()
    broken = original.replace(
        "RUN node build.mjs --out /web/dist", "RUN echo about to fail && exit 7"
    )
    assert broken != original, "the frontend Dockerfile's build step moved; update this test"
    dockerfile.write_text(broken)
    try:
        code, _, err = _build(
            build_project, "--only", "frontend", "--set", f"build.builder={builder}"
        )
    finally:
        dockerfile.write_text(original)
    assert code == 1
    assert f"The frontend image failed to build at {step}" in err, err
    assert "RUN echo about to fail && exit 7" in err
    assert "about to fail" in err.split("last log lines", 1)[1]
    assert "\nFix the Dockerfile step" in err


def test_a_compose_without_a_usable_builder_points_to_the_classic_one(
    build_project: Path, build_env: dict[str, str], tmp_path: Path
) -> None:
    compose = tmp_path / "docker-compose"
    compose.write_text(
        "#!/bin/sh\necho 'Error: compose build requires buildx 0.17 or later' >&2\nexit 1\n"
    )
    compose.chmod(0o755)
    code, _, err = _build(
        build_project,
        "--only",
        "frontend",
        "--no-cache",
        env={"AUTODEVHUB_COMPOSE_BINARY": str(compose)},
    )
    assert code == 1
    assert "The frontend image could not be built with BuildKit" in err
    assert "requires buildx 0.17 or later" in err
    assert "build.builder: classic" in err and "Traceback" not in err


def test_the_classic_builder_builds_the_same_image(
    build_project: Path, build_env: dict[str, str]
) -> None:
    code, out, err = run_cli(
        "build",
        "--env",
        "dev",
        "-v",
        "--only",
        "frontend",
        "--no-cache",
        "--set",
        "build.builder=classic",
        "--project-dir",
        str(build_project),
    )
    assert code == 0, err
    assert "Step 1/" in err and "#1 [" not in err
    assert any(line.startswith("frontend") and " built " in line for line in out.splitlines())


def test_missing_base_image(build_project: Path, build_env: dict[str, str]) -> None:
    code, _, err = _build(
        build_project,
        "--only",
        "frontend",
        "--set",
        "build.args.NODE_IMAGE=autodevhub-ci/no-such-node:0",
    )
    assert code == 1
    assert "The frontend image starts from autodevhub-ci/no-such-node:0" in err
    assert "could not pull" in err
    assert "build.args.NODE_IMAGE" in err


def test_unreachable_registry_records_nothing(
    build_project: Path, first_build: dict[str, Any]
) -> None:
    record = build_project / ".autodevhub" / "builds" / "dev.json"
    before = record.read_text()
    code, _, err = _build(build_project, "--push", "--set", "registry.url=127.0.0.1:5999/nowhere")
    assert code == 1
    assert "127.0.0.1:5999" in err and "unreachable" in err
    assert record.read_text() == before, "a failed build leaves the last record as it was"
