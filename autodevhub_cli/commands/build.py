"""`autodevhub build`."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from autodevhub_cli.commands import summary
from autodevhub_cli.commands.options import Env, Output, OutputFormat, ProjectDir, Sets
from autodevhub_cli.commands.progress import Progress


def build(
    env: Env,
    push: Annotated[
        bool, typer.Option("--push", help="Push to the environment's registry.")
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Build only this component's image (repeatable)."),
    ] = None,
    output: Output = OutputFormat.text,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Rebuild every layer, even for a known content tag.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show every build log line.")
    ] = False,
    sets: Sets = None,
    project_dir: ProjectDir = None,
) -> None:
    """Build the environment's images (content-tagged, reused when unchanged) and push them."""
    from autodevhub_cli.core.build import BuildRequest, build_images

    progress = Progress(list(only or []), verbose=verbose)
    with progress.live():
        result = build_images(
            BuildRequest(
                environment=env,
                project_dir=project_dir,
                sets=sets or (),
                push=push,
                only=only or (),
                no_cache=no_cache,
            ),
            report=progress,
        )
    data = result.to_dict()
    summary.append(
        f"### autodevhub build --env {env}\n\n{summary.images_table(data['images'])}\n\n"
        f"{len(result.images)} image(s) in {result.seconds:.1f} s"
    )
    if output is OutputFormat.json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    for image in result.images:
        size = f"{image.size_bytes / 1e6:.0f} MB" if image.size_bytes else "-"
        sys.stdout.write(
            f"{image.name:9} {image.action:7} {image.ref}  ({size}, {image.seconds:.1f}s)\n"
        )
    sys.stdout.write(f"{len(result.images)} image(s) in {result.seconds:.1f}s\n")
