"""The steps of a deploy, as functions a Python caller can use: load -> render -> validate -> ..."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from autodevhub_cli.core.config import load_environment
from autodevhub_cli.core.environment import Environment
from autodevhub_cli.core.project import find_project
from autodevhub_cli.core.render import RenderResult, render, write_atomically
from autodevhub_cli.core.validate import ValidationReport, check_kube_version, validate


@dataclass
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


@dataclass
class RenderOutcome:
    """The rendered manifests, the typed environment behind them and the validation report."""

    environment: Environment
    result: RenderResult
    report: ValidationReport | None
    written: list[Path]


def render_environment(request: RenderRequest) -> RenderOutcome:
    """Load, render and (unless disabled) validate an environment; write files when asked."""
    kube_version = check_kube_version(request.kube_version) if request.kube_version else None
    project = find_project(request.project_dir)
    environment = load_environment(project, request.environment, request.sets, request.environ)
    result = render(project, environment, request.target)
    report = None
    if request.validate:
        report = validate(result, kube_version or environment.kubernetes.version)
    written: list[Path] = []
    if request.out_dir is not None:
        files = result.files()
        write_atomically(request.out_dir, files)
        written = [request.out_dir / name for name in files]
    return RenderOutcome(environment, result, report, written)
