"""Build inputs: context files, content tags, base images named by a Dockerfile (no engine)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from autodevhub_cli.core.config import load_environment
from autodevhub_cli.core.errors import ConfigError
from autodevhub_cli.core.images import (
    base_images,
    context_tar,
    glob_match,
    plan_images,
    stage_context,
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


def _plans(root: Path, *sets: str) -> dict:
    p = find_project(root)
    return {plan.component: plan for plan in plan_images(p, load_environment(p, "dev", sets, {}))}


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
