"""Base images on the real Docker engine: resolved to what they are (registry digest, else image
ID), part of the content tag, pinned in the build, recorded; the wheelhouse's Python is the one
the base image reports."""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_cli
from tests.images.conftest import BASE_IMAGES, REGISTRY, engine_calls

pytestmark = pytest.mark.docker


def _build(project: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, Any, str]:
    code, out, err = run_cli(
        "build", "--env", "dev", "--output", "json", "--project-dir", str(project), *args, env=env
    )
    return code, (json.loads(out) if code == 0 else None), err


def _image(result: dict[str, Any], name: str) -> dict[str, Any]:
    return next(image for image in result["images"] if image["name"] == name)


def _derived(client: Any, base: str, tag: str, *lines: str) -> Any:
    """An image made from `base` by a few Dockerfile lines (a stand-in for a patched base)."""
    dockerfile = "\n".join([f"FROM {base}", *lines]) + "\n"
    image, _ = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    return image


@pytest.fixture()
def scratch_tags(docker_client: Any) -> Iterator[list[str]]:
    """Image tags a test makes; removed afterwards."""
    made: list[str] = []
    yield made
    for tag in made:
        with suppress(Exception):  # already gone
            docker_client.images.remove(tag, force=True)


def test_a_base_retagged_to_other_contents_makes_a_new_tag_and_a_build(
    docker_client: Any, build_project: Path, build_env: dict[str, str], scratch_tags: list[str]
) -> None:
    # A base named by a tag, as a user's `nginx:alpine` is; the publisher then moves the tag.
    base = f"autodevhub-test/nginx-{uuid.uuid4().hex[:8]}:1"
    scratch_tags.append(base)
    original = docker_client.images.get(BASE_IMAGES["NGINX"])
    original.tag(base)
    sets = ("--only", "frontend", "--set", f"build.args.NGINX_IMAGE={base}")

    code, first, err = _build(build_project, *sets)
    assert code == 0, err
    built = _image(first, "frontend")
    assert built["action"] == "built"
    code, again, err = _build(build_project, *sets)
    assert code == 0, err
    assert (_image(again, "frontend")["tag"], _image(again, "frontend")["action"]) == (
        built["tag"],
        "reused",
    )

    patched = _derived(docker_client, BASE_IMAGES["NGINX"], base, f"LABEL patch={uuid.uuid4()}")
    assert patched.id != original.id
    code, after, err = _build(build_project, *sets)
    assert code == 0, err
    rebuilt = _image(after, "frontend")
    assert rebuilt["tag"] != built["tag"] and rebuilt["action"] == "built"
    scratch_tags.append(f"{rebuilt['repository']}:{rebuilt['tag']}")

    # The image says what it was built from; the record lists every base.
    labels = docker_client.images.get(f"{rebuilt['repository']}:{rebuilt['tag']}").labels
    assert labels["org.opencontainers.image.base.name"] == base
    assert labels["org.opencontainers.image.base.digest"] == patched.id
    assert labels["io.autodevhub.content-tag"] == rebuilt["tag"]
    record = json.loads((build_project / ".autodevhub" / "builds" / "dev.json").read_text())
    bases = {b["reference"]: b for b in _image(record, "frontend")["bases"]}
    assert bases[base] == {
        "reference": base,
        "field": "build.args.NGINX_IMAGE",
        "digest": None,  # imported here, never pulled: no registry digest
        "image_id": patched.id,
        "platform": f"{patched.attrs['Os']}/{patched.attrs['Architecture']}",
        "pinned": base,
    }
    assert (
        bases[BASE_IMAGES["NODE"]]["image_id"] == docker_client.images.get(BASE_IMAGES["NODE"]).id
    )

    # The tag follows the contents: the old base back under the name, the old tag back.
    original.tag(base)
    code, back, err = _build(build_project, *sets)
    assert code == 0, err
    assert (_image(back, "frontend")["tag"], _image(back, "frontend")["action"]) == (
        built["tag"],
        "reused",
    )
    scratch_tags.append(f"{built['repository']}:{built['tag']}")


def test_a_pulled_base_is_built_from_its_registry_digest(
    docker_client: Any, build_project: Path, build_env: dict[str, str], scratch_tags: list[str]
) -> None:
    # Pushing gives the engine a registry digest for the image, as pulling a published one does.
    base = f"{REGISTRY}/base{uuid.uuid4().hex[:8]}/nginx:1"
    scratch_tags.append(base)
    _derived(docker_client, BASE_IMAGES["NGINX"], base, f"LABEL published={uuid.uuid4()}")
    docker_client.images.push(base)
    repo_digest = next(
        d for d in docker_client.images.get(base).attrs["RepoDigests"] if d.startswith(REGISTRY)
    )
    digest = repo_digest.split("@", 1)[1]

    code, out, err = run_cli(
        *("build", "--env", "dev", "-v", "--only", "frontend", "--output", "json"),
        *("--set", f"build.args.NGINX_IMAGE={base}", "--project-dir", str(build_project)),
    )
    assert code == 0, err
    built = _image(json.loads(out), "frontend")
    scratch_tags.append(f"{built['repository']}:{built['tag']}")
    nginx = next(b for b in built["bases"] if b["reference"] == base)
    assert (nginx["digest"], nginx["pinned"]) == (digest, repo_digest)
    # BuildKit was handed the immutable reference, not the tag.
    assert f"FROM {repo_digest}" in err, err
    labels = docker_client.images.get(f"{built['repository']}:{built['tag']}").labels
    assert labels["org.opencontainers.image.base.digest"] == digest


def test_the_wheelhouse_is_for_the_python_the_base_reports(
    docker_client: Any,
    build_project: Path,
    build_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from autodevhub_cli.core.adapters import docker_engine
    from autodevhub_cli.core.wheelhouse import ImagePython, image_python

    # The build of the image with a wheelhouse says which Python it fetched wheels for.
    source = build_project / "service" / "logs.py"
    source.write_text(source.read_text() + f"\n# a change {uuid.uuid4().hex}\n")
    code, _, err = _build(build_project, "--only", "backend")
    assert code == 0, err
    assert "preparing the wheelhouse for CPython 3.11 on linux/x86_64 (glibc 2.36)" in err

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no answer kept yet
    client = docker_engine.connect()
    real = docker_client.images.get(BASE_IMAGES["PYTHON"]).id
    with engine_calls() as calls:
        found = image_python(client, real, BASE_IMAGES["PYTHON"], "build.args.PYTHON_IMAGE")
    # Debian bookworm's own Python, asked in a throwaway container without network.
    assert found == ImagePython("3.11", "cpython", "glibc", "2.36", "x86_64")
    assert [c for c in calls if c.startswith("docker: run")], calls
    assert not docker_client.containers.list(all=True, filters={"label": "io.autodevhub.throwaway"})

    # An image whose python3 says it is another Python (a probe stand-in, not a real 3.12).
    said = {"version": "3.12", "implementation": "cpython", "libc": "musl", "libc_version": "1.2"}
    script = "#!/bin/sh\necho '" + json.dumps({**said, "machine": "aarch64"}) + "'\n"
    encoded = base64.b64encode(script.encode()).decode()
    other = _derived(
        docker_client,
        BASE_IMAGES["PYTHON"],
        f"autodevhub-test/python-says-3.12:{uuid.uuid4().hex[:8]}",
        f"RUN echo {encoded} | base64 -d > /usr/local/bin/python3 && chmod +x "
        "/usr/local/bin/python3",
    )
    try:
        reported = image_python(client, other.id, "x", "build.args.PYTHON_IMAGE")
        assert reported == ImagePython("3.12", "cpython", "musl", "1.2", "aarch64")
        assert reported.platform_tags()[0] == "musllinux_1_2_aarch64"
        # Kept by image ID: asking again runs no container.
        with engine_calls() as calls:
            assert image_python(client, other.id, "x", "f") == reported
        assert not [c for c in calls if c.startswith("docker: run")], calls
    finally:
        docker_client.images.remove(other.id, force=True)


def test_a_wheelhouse_base_without_python_says_which_field(
    build_project: Path, build_env: dict[str, str], tmp_path: Path
) -> None:
    source = build_project / "service" / "logs.py"
    source.write_text(source.read_text() + f"\n# a change {uuid.uuid4().hex}\n")
    code, _, err = _build(
        build_project,
        *("--only", "backend", "--set", f"build.args.PYTHON_IMAGE={BASE_IMAGES['NODE']}"),
        env={"XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert code == 1
    assert f"installed into the base image {BASE_IMAGES['NODE']} (build.args.PYTHON_IMAGE)" in err
    assert "has no python3" in err and "Set build.args.PYTHON_IMAGE to an image with python3" in err
    assert "Traceback" not in err
