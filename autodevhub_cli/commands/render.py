"""`autodevhub render` and `autodevhub validate`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from autodevhub_cli.commands.options import (
    Env,
    Images,
    KubeVersion,
    Output,
    OutputFormat,
    ProjectDir,
    Sets,
)

Target = Annotated[
    str | None,
    typer.Option(
        "--target",
        "-t",
        help="compose or kubernetes (default: the environment's target).",
        show_default=False,
    ),
]


def render(
    env: Env,
    target: Target = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write one file per resource into this folder (replaced atomically) "
            "instead of printing.",
            show_default=False,
        ),
    ] = None,
    sets: Sets = None,
    no_validate: Annotated[
        bool, typer.Option("--no-validate", help="Skip schema validation.")
    ] = False,
    kube_version: KubeVersion = None,
    images: Images = None,
    project_dir: ProjectDir = None,
) -> None:
    """Render an environment to Kubernetes manifests or a Compose file (validated)."""
    from autodevhub_cli.core.pipeline import RenderRequest, render_environment, render_text

    request = RenderRequest(
        environment=env,
        project_dir=project_dir,
        target=target,
        sets=sets or (),
        validate=not no_validate,
        kube_version=kube_version,
        out_dir=out,
        images=images,
    )
    if out is None:
        sys.stdout.write(render_text(request))
    else:
        outcome = render_environment(request)
        sys.stderr.write(f"wrote {len(outcome.written)} file(s) to {out}\n")


def validate(
    env: Env,
    target: Target = None,
    sets: Sets = None,
    kube_version: KubeVersion = None,
    output: Output = OutputFormat.text,
    project_dir: ProjectDir = None,
) -> None:
    """Render an environment and check it against the Kubernetes or Compose schemas."""
    from autodevhub_cli.core.pipeline import RenderRequest, render_environment

    outcome = render_environment(
        RenderRequest(
            environment=env,
            project_dir=project_dir,
            target=target,
            sets=sets or (),
            kube_version=kube_version,
        )
    )
    report = outcome.report
    assert report is not None
    if output is OutputFormat.json:
        payload = {
            "environment": env,
            "target": report.target,
            "kube_version": report.kube_version,
            "valid": True,
            "documents": report.checked,
            "cached": report.cached,
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    against = (
        f"Kubernetes {report.kube_version}" if report.kube_version else "docker compose config"
    )
    sys.stdout.write(
        f"{env}: {len(report.checked)} document(s) valid against {against}"
        f" ({report.cached} verdict(s) from cache)\n"
    )
    for label in report.checked:
        sys.stdout.write(f"  ok  {label}\n")
