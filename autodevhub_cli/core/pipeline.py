"""Load -> render -> validate, as functions a Python caller can use.

The heavy modules (pydantic models, Jinja, PyYAML, schema engines) are imported inside the
functions, so a render served from the render cache never loads them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from autodevhub_cli.core import render_cache
from autodevhub_cli.core.errors import ConfigError
from autodevhub_cli.core.project import find_project

if TYPE_CHECKING:
    from autodevhub_cli.core.environment import Environment
    from autodevhub_cli.core.render import RenderResult
    from autodevhub_cli.core.validate import ValidationReport


@dataclass(kw_only=True)
class RenderRequest:
    """Everything `autodevhub render` and `validate` need, gathered from flags and environment."""

    environment: str
    project_dir: str | os.PathLike[str] | None = None
    target: str | None = None
    sets: Sequence[str] = ()
    validate: bool = True
    kube_version: str | None = None
    out_dir: Path | None = None
    environ: Mapping[str, str] | None = None
    images: Path | None = None
    # The environment as a command already loaded it with these `sets` (deploy, diff): it is
    # not read and validated again; only the images of `images` are pinned on a copy of it.
    loaded: Environment | None = None


@dataclass
class RenderOutcome:
    """The rendered manifests, the typed environment behind them and the validation report."""

    environment: Environment
    result: RenderResult
    report: ValidationReport | None
    written: list[Path]


def image_overrides(path: Path, environment: str) -> list[str]:
    """`--set` expressions pinning each component's image to a build's tag and digest."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"--images {path} does not exist.",
            hint="Pass the JSON that `autodevhub build --output json` printed, or the record "
            f".autodevhub/builds/{environment}.json.",
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--images {path} is not readable JSON: {exc}.") from None
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list) or not all(
        isinstance(i, dict) and {"name", "tag"} <= set(i) for i in images
    ):
        raise ConfigError(
            f"--images {path} has no list of images with name and tag.",
            hint="Use the output of `autodevhub build --output json`.",
        )
    if data.get("environment") not in (None, environment):
        raise ConfigError(
            f"--images {path} was built for environment {data['environment']!r}, not "
            f"{environment!r}.",
            hint="Build the images for this environment (base images and registry differ).",
        )
    sets = []
    for image in images:
        sets.append(f"components.{image['name']}.image.tag={image['tag']}")
        if image.get("digest"):
            sets.append(f"components.{image['name']}.image.digest={image['digest']}")
    return sets


def pin_images(environment: Environment, images: Path, sets: Sequence[str]) -> Environment:
    """A copy of a loaded environment with each component's image pinned to the build record
    `images` (its tag and digest), as `image_overrides` would set them before loading; a value
    the command's own `sets` gives for the same field wins, as it does there."""
    from autodevhub_cli.core.config import parse_set_expression

    explicit = [parse_set_expression(expression).path for expression in sets]
    pinned = environment.model_copy(deep=True)
    for expression in image_overrides(images, environment.name):
        override = parse_set_expression(expression)
        path = override.path
        if any(path[: len(given)] == given for given in explicit):
            continue  # the command's own --set of this field (or of the whole image) wins
        _, component, _, field_name = path
        value = override.value
        if component not in pinned.components:
            raise ConfigError(
                f"--images {images} names component {component!r}, which environment "
                f"{environment.name!r} does not have (components: "
                f"{', '.join(pinned.components)}).",
                hint="Pass the build record of this project and environment.",
            )
        image = pinned.components[component].image
        assert image is not None
        setattr(image, field_name, value)
    problems = pinned.problems()
    if problems:
        listed = "; ".join(f"{'.'.join(at)}: {message}" for at, message in problems)
        raise ConfigError(
            f"Environment {environment.name!r} with the images of {images}: {listed}."
        )
    return pinned


def render_environment(request: RenderRequest) -> RenderOutcome:
    """Load, render and (unless disabled) validate an environment; write files when asked."""
    from autodevhub_cli.core.config import load_environment
    from autodevhub_cli.core.render import render
    from autodevhub_cli.core.validate import check_kube_version, validate

    kube_version = check_kube_version(request.kube_version) if request.kube_version else None
    project = find_project(request.project_dir)
    if request.out_dir is not None:
        from autodevhub_cli.core.render_out import repair

        repair(request.out_dir)
    sets = list(request.sets)
    if request.loaded is not None:
        environment = request.loaded
        if request.images is not None:
            environment = pin_images(environment, request.images, sets)
    else:
        if request.images is not None:
            # Built images first: an explicit --set still wins.
            sets = image_overrides(request.images, request.environment) + sets
        environment = load_environment(project, request.environment, sets, request.environ)
    result = render(project, environment, request.target)
    report = None
    if request.validate:
        report = validate(result, kube_version or environment.kubernetes.version)
    written: list[Path] = []
    if request.out_dir is not None:
        from autodevhub_cli.core.render_out import write_rendered

        files = result.files()
        write_rendered(request.out_dir, files, project)
        written = [request.out_dir / name for name in files]
    return RenderOutcome(environment, result, report, written)


def render_text(request: RenderRequest) -> str:
    """The validated YAML stream `render` prints; from the render cache when nothing changed."""
    use_cache = (
        render_cache.enabled()
        and request.validate
        and request.out_dir is None
        and (request.images is None or Path(request.images).is_file())
    )
    if not use_cache:
        return render_environment(request).result.to_yaml()
    project = find_project(request.project_dir)
    environ = os.environ if request.environ is None else request.environ
    cache_key = render_cache.request_key(
        project.root,
        request.environment,
        request.target,
        request.kube_version,
        request.sets,
        request.images,
        environ,
    )
    cached = render_cache.load(cache_key)
    if cached is not None:
        return cached
    text = render_environment(request).result.to_yaml()
    render_cache.store(cache_key, text)
    return text
