"""Build inputs: context files, content tags, base images named by a Dockerfile (no engine)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from autodevhub_cli.core.bases import BaseImage, resolve
from autodevhub_cli.core.config import load_environment
from autodevhub_cli.core.errors import BuildError, ConfigError
from autodevhub_cli.core.images import (
    ImagePlan,
    base_images,
    context_tar,
    final_base,
    glob_match,
    plan_images,
    stage_context,
    wheelhouse_bases,
    with_bases,
)
from autodevhub_cli.core.project import find_project
from tests.helpers import REPO, copy_project


@pytest.mark.parametrize(
    "path,pattern,expected",
    [
        ("service/web/src/app.js", "service/web/**", True),
        ("service/a/__pycache__/b.pyc", "**/__pycache__/**", True),
        ("service/x.py", "service/web/**", False),
        ("service/x.py", "service/*.py", True),
        ("service/routes/x.py", "service/*.py", False),
        ("a.pyc", "**/*.pyc", True),
    ],
)
def test_glob_match(path: str, pattern: str, expected: bool) -> None:
    assert glob_match(path, pattern) is expected


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    root = copy_project(tmp_path)
    (root / "service" / "web" / "src").mkdir(parents=True)
    (root / "service" / "app.py").write_text("print('hi')\n")
    (root / "service" / "requirements.lock").write_text("fastapi==1\n")
    (root / "service" / "Dockerfile").write_text((REPO / "service" / "Dockerfile").read_text())
    (root / "service" / "web" / "Dockerfile").write_text(
        (REPO / "service" / "web" / "Dockerfile").read_text()
    )
    (root / "service" / "web" / "src" / "index.html").write_text("<html></html>\n")
    return root


ID_A = "sha256:" + "a" * 64
ID_B = "sha256:" + "b" * 64
DIGEST = "sha256:" + "d" * 64


def _bases(root: Path, plan: ImagePlan, image_id: str = ID_A) -> list[BaseImage]:
    """Every base of the plan resolved to one local image (no registry digest)."""
    return [BaseImage(ref, "f", image_id) for ref, _ in base_images(root, plan)]


def _plans(root: Path, *sets: str, image_id: str = ID_A) -> dict[str, ImagePlan]:
    p = find_project(root)
    plans = plan_images(p, load_environment(p, "dev", sets, {}))
    return {plan.component: with_bases(plan, _bases(root, plan, image_id)) for plan in plans}


def test_backend_context_excludes_the_web_folder(project: Path) -> None:
    plans = _plans(project)
    assert "service/app.py" in plans["backend"].files
    assert not [f for f in plans["backend"].files if f.startswith("service/web/")]
    assert plans["frontend"].files == ["service/web/Dockerfile", "service/web/src/index.html"]


def test_content_tag_follows_content_not_time(project: Path) -> None:
    first = _plans(project)
    (project / "service" / "app.py").touch()
    assert _plans(project)["backend"].content_tag == first["backend"].content_tag
    (project / "service" / "app.py").write_text("print('changed')\n")
    second = _plans(project)
    assert second["backend"].content_tag != first["backend"].content_tag
    assert second["frontend"].content_tag == first["frontend"].content_tag


def test_content_tag_follows_build_args(project: Path) -> None:
    first = _plans(project)["backend"].content_tag
    other = _plans(project, "build.args.PYTHON_IMAGE=python:3.11-bookworm")["backend"]
    assert other.content_tag != first
    assert other.buildargs["PYTHON_IMAGE"] == "python:3.11-bookworm"


def test_content_tag_follows_what_the_base_image_is(project: Path) -> None:
    first = _plans(project)
    # The same base image: the same tag, on every run.
    assert _plans(project)["backend"].content_tag == first["backend"].content_tag
    # The same base tag re-pointed at other contents (a patched base): a new tag.
    patched = _plans(project, image_id=ID_B)
    assert patched["backend"].content_tag != first["backend"].content_tag
    assert patched["frontend"].content_tag != first["frontend"].content_tag
    # A registry digest, where the engine has one, is the identity instead of the image ID.
    plan = first["backend"]
    pulled = with_bases(plan, [BaseImage("python:3.11-slim", "f", ID_A, DIGEST)])
    assert pulled.content_tag not in (plan.content_tag, "")
    assert pulled.content_tag.startswith("c-") and len(pulled.content_tag) == 18


def test_the_platform_of_a_multi_platform_base_is_part_of_the_tag(project: Path) -> None:
    """One index digest stands for every platform of a base: amd64 and arm64 builds differ."""
    plan = _plans(project)["backend"]
    amd64 = {
        "Id": ID_A,
        "RepoDigests": [f"python@{DIGEST}"],
        "Os": "linux",
        "Architecture": "amd64",
    }
    arm64 = {**amd64, "Id": ID_B, "Architecture": "arm64", "Variant": "v8"}
    on_amd64, on_arm64 = (resolve("python:3.11-slim", "f", attrs) for attrs in (amd64, arm64))
    assert on_amd64.identity == on_arm64.identity == DIGEST
    assert (on_amd64.platform, on_arm64.platform) == ("linux/amd64", "linux/arm64/v8")
    tags = {with_bases(plan, [base]).content_tag for base in (on_amd64, on_arm64)}
    assert len(tags) == 2
    assert with_bases(plan, [on_amd64]).content_tag == with_bases(plan, [on_amd64]).content_tag


def test_the_tag_is_known_only_once_the_bases_are_resolved(project: Path) -> None:
    p = find_project(project)
    plan = plan_images(p, load_environment(p, "dev", (), {}))[0]
    assert plan.content_tag == "" and plan.inputs_digest
    with pytest.raises(ValueError, match="no content tag"):
        plan.ref()


def test_a_base_resolves_to_its_registry_digest_else_its_image_id() -> None:
    pulled = {
        "Id": ID_A,
        "RepoDigests": [f"other/python@{'sha256:' + 'e' * 64}", f"python@{DIGEST}"],
    }
    # docker.io/library/python and python are one repository; other/python is not.
    for reference in ("python:3.11-slim", "docker.io/library/python:3.11-slim"):
        base = resolve(reference, "build.args.PYTHON_IMAGE", pulled)
        assert (base.digest, base.identity) == (DIGEST, DIGEST)
    assert base.pinned == f"docker.io/library/python@{DIGEST}"
    local = resolve("127.0.0.1:5000/ci/python:3.11", "f", {"Id": ID_B, "RepoDigests": []})
    assert (local.digest, local.identity, local.pinned) == (
        None,
        ID_B,
        "127.0.0.1:5000/ci/python:3.11",
    )
    registry = {"Id": ID_B, "RepoDigests": [f"127.0.0.1:5000/ci/python@{DIGEST}"]}
    pinned = resolve("127.0.0.1:5000/ci/python:3.11", "f", registry).pinned
    assert pinned == f"127.0.0.1:5000/ci/python@{DIGEST}"


def test_a_pinned_base_must_be_what_the_engine_holds() -> None:
    held = {"Id": ID_A, "RepoDigests": [f"python@{DIGEST}"]}
    base = resolve(f"python:3.11-slim@{DIGEST}", "build.args.PYTHON_IMAGE", held)
    assert base.digest == DIGEST and base.pinned == f"python@{DIGEST}"
    other = "sha256:" + "c" * 64
    with pytest.raises(BuildError) as caught:
        resolve(f"python@{other}", "build.args.PYTHON_IMAGE", held)
    message = str(caught.value)
    assert f"pinned to {other}" in message and DIGEST in message
    assert "build.args.PYTHON_IMAGE" in message and "docker pull" in message
    assert "\n" not in message


def test_builds_start_from_the_pinned_reference(project: Path) -> None:
    plan = _plans(project)["backend"]
    assert plan.pinned_buildargs(project) == plan.buildargs  # no registry digest: the tag
    pulled = with_bases(plan, [BaseImage("python:3.11-slim", "f", ID_A, DIGEST)])
    assert pulled.pinned_buildargs(project)["PYTHON_IMAGE"] == f"python@{DIGEST}"
    assert pulled.buildargs["PYTHON_IMAGE"] == "python:3.11-slim"


def test_the_wheelhouse_is_installed_by_the_stage_that_copies_it(project: Path) -> None:
    plans = _plans(project)
    assert wheelhouse_bases(project, plans["backend"]) == [("python:3.11-slim", "PYTHON_IMAGE")]
    assert final_base(project, plans["frontend"]) == ("nginx:alpine", "NGINX_IMAGE")
    dockerfile = project / "service" / "Dockerfile"
    dockerfile.write_text(
        "ARG PY=python:3.12-alpine\nARG RUNTIME=debian:12\n"
        "FROM ${PY} AS deps\n"
        "RUN --mount=type=bind,source=wheelhouse,target=/w \\\n"
        "    pip install --no-index --find-links /w -r /w/requirements.lock\n"
        "FROM deps AS app\nCOPY service/ /app/\n"
        "FROM ${RUNTIME}\nCOPY --from=app /app /app\n"
    )
    plan = _plans(project)["backend"]
    assert wheelhouse_bases(project, plan) == [("python:3.12-alpine", "PY")]
    assert final_base(project, plan) == ("debian:12", "RUNTIME")
    assert final_base(project, ImagePlan(**{**vars(plan), "stage": "app"})) == (
        "python:3.12-alpine",
        "PY",
    )


def test_base_images_resolve_build_args(project: Path) -> None:
    plans = _plans(project)
    assert base_images(project, plans["frontend"]) == [
        ("node:20-alpine", "NODE_IMAGE"),
        ("nginx:alpine", "NGINX_IMAGE"),
    ]
    assert base_images(project, plans["backend"]) == [
        ("python:3.11-slim", "PYTHON_IMAGE"),
        ("python:3.11-slim", "PYTHON_IMAGE"),
    ]


def test_context_tar_is_reproducible(project: Path) -> None:
    plan = _plans(project)["backend"]
    first = context_tar(project, plan, None).getvalue()
    assert first == context_tar(project, plan, None).getvalue()
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        assert tar.getnames() == plan.files


def test_staged_context_holds_exactly_the_tar_context(project: Path, tmp_path: Path) -> None:
    plan = _plans(project)["backend"]
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "demo-1.0-py3-none-any.whl").write_bytes(b"wheel")
    (wheels / "notes.txt").write_text("not a wheel")
    staging = tmp_path / "staging"
    stale = staging / "backend" / "service" / "gone.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("from an earlier build")
    folder = stage_context(project, plan, wheels, staging)
    staged = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    with tarfile.open(fileobj=context_tar(project, plan, wheels)) as tar:
        assert staged == sorted(tar.getnames())
    assert "wheelhouse/demo-1.0-py3-none-any.whl" in staged
    for rel in plan.files:
        assert (folder / rel).read_bytes() == (project / rel).read_bytes()
        assert (folder / rel).stat().st_mtime_ns == (project / rel).stat().st_mtime_ns


def test_context_pattern_matching_nothing(project: Path) -> None:
    with pytest.raises(ConfigError, match="matches no file"):
        _plans(project, "components.frontend.build.context=[nothing/**]")


def test_unknown_only(project: Path) -> None:
    p = find_project(project)
    with pytest.raises(ConfigError, match="Unknown image 'db'"):
        plan_images(p, load_environment(p, "dev", (), {}), ["db"])
