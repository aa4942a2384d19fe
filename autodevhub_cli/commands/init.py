"""`autodevhub init`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from autodevhub_cli.commands.options import Output, OutputFormat


def init(
    folder: Annotated[
        Path, typer.Argument(help="Where to write the project (default: the current folder).")
    ] = Path("."),
    name: Annotated[
        str | None,
        typer.Option("--name", help="The project's name (default: from the folder's name)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace starter files that already exist.")
    ] = False,
    output: Output = OutputFormat.text,
) -> None:
    """Write a minimal working project: one component built from a Dockerfile, a Compose and a
    Kubernetes environment, their templates and a smoke check."""
    from autodevhub_cli.core.scaffold import InitRequest, init_project

    result = init_project(InitRequest(folder=folder, name=name, force=force))
    if output is OutputFormat.json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    for rel in result.written:
        mark = "replaced" if rel in result.replaced else "wrote"
        sys.stdout.write(f"{mark:8} {rel}\n")
    where = "" if result.folder == Path.cwd() else f" -C {result.folder}"
    sys.stdout.write(
        f"\nProject {result.name!r} is ready. Next:\n"
        f"  autodevhub render --env dev{where}     # the Compose file\n"
        f"  autodevhub validate --env prod{where}  # the Kubernetes objects, schema-checked\n"
        f"  autodevhub deploy --env dev{where}     # build, run with Docker Compose, check\n"
    )
