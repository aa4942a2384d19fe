"""`render --images`: Kubernetes output pinned to what a build pushed (image@sha256:...)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_pinning_a_loaded_environment_renders_what_loading_again_renders(
    env: str, tmp_path: Path
) -> None:
    """deploy and diff load the environment once and pin a build's images on a copy of it: the
    output and the values are those of loading it again with the images as --set (where an
    explicit --set of an image field still wins)."""
    from autodevhub_cli.core.config import load_environment
    from autodevhub_cli.core.pipeline import RenderRequest, render_environment
    from autodevhub_cli.core.project import find_project

    project = find_project(REPO)
    record = tmp_path / "images.json"
    images = [
        {"name": n, "tag": "c-00000000000000a1", "digest": "sha256:" + "2" * 64}
        for n in ("backend", "frontend")
    ]
    record.write_text(json.dumps({"environment": env, "images": images}))
    for sets in ([], ["components.frontend.image.tag=c-explicit"]):
        again = render_environment(
            RenderRequest(environment=env, project_dir=REPO, sets=sets, images=record)
        )
        loaded = load_environment(project, env, sets)
        pinned = render_environment(
            RenderRequest(
                environment=env, project_dir=REPO, sets=sets, images=record, loaded=loaded
            )
        )
        assert pinned.result.to_yaml() == again.result.to_yaml()
        assert pinned.environment == again.environment
        assert loaded.components["backend"].image != pinned.environment.components["backend"].image


def test_a_build_record_naming_a_component_the_environment_lacks_is_refused(
    tmp_path: Path,
) -> None:
    """deploy and diff pin a build record's images on the loaded environment: a record from
    another project (a component this environment does not have) is named, not applied."""
    from autodevhub_cli.core.config import load_environment
    from autodevhub_cli.core.errors import ConfigError
    from autodevhub_cli.core.pipeline import pin_images
    from autodevhub_cli.core.project import find_project

    record = tmp_path / "images.json"
    record.write_text(json.dumps({"environment": "prod", "images": [{"name": "api", "tag": "x"}]}))
    loaded = load_environment(find_project(REPO), "prod")
    with pytest.raises(ConfigError) as raised:
        pin_images(loaded, record, [])
    message = str(raised.value)
    assert f"--images {record} names component 'api'" in message
    assert "does not have (components: backend, worker, frontend)" in message
    assert "build record of this project" in (raised.value.hint or "")
