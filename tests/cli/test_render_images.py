"""`render --images`: Kubernetes output pinned to what a build pushed (image@sha256:...)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import REPO, documents, find, run_cli

DIGEST = "sha256:" + "ab" * 32


def _build_json(tmp_path: Path, environment: str = "prod") -> Path:
    path = tmp_path / "images.json"
    path.write_text(
        json.dumps(
            {
                "environment": environment,
                "images": [
                    {"name": "backend", "tag": "c-0123456789abcdef", "digest": DIGEST},
                    {"name": "frontend", "tag": "c-fedcba9876543210", "digest": DIGEST},
                ],
            }
        )
    )
    return path


def test_images_are_pinned_by_digest(tmp_path: Path) -> None:
    code, out, err = run_cli(
        "render", "--env", "prod", "--images", str(_build_json(tmp_path)), "-C", str(REPO)
    )
    assert code == 0, err
    docs = documents(out)
    image = find(docs, "Rollout", "backend")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"registry.example.com/autodevhub/backend:c-0123456789abcdef@{DIGEST}"


def test_images_from_another_environment_are_refused(tmp_path: Path) -> None:
    code, _, err = run_cli(
        "render", "--env", "prod", "--images", str(_build_json(tmp_path, "dev")), "-C", str(REPO)
    )
    assert code == 2
    assert "built for environment 'dev', not 'prod'" in err


def test_images_file_missing(tmp_path: Path) -> None:
    code, _, err = run_cli(
        "render", "--env", "prod", "--images", str(tmp_path / "nope.json"), "-C", str(REPO)
    )
    assert code == 2
    assert "does not exist" in err and "build --output json" in err


def test_images_file_not_a_build(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"images": [{"tag": "x"}]}')
    code, _, err = run_cli("render", "--env", "prod", "--images", str(path), "-C", str(REPO))
    assert code == 2
    assert "no list of images with name and tag" in err
