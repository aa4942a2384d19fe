"""`autodevhub schema`: the environment model as a JSON Schema or as the reference page."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated

import typer

from autodevhub_cli.commands.options import ProjectDir


class SchemaFormat(StrEnum):
    """What `schema` prints."""

    json = "json"
    markdown = "markdown"


def schema(
    output_format: Annotated[
        SchemaFormat,
        typer.Option(
            "--format",
            "-f",
            help="json: a JSON Schema of one environment file, for editors (with the project's "
            "own values schema when it ships environments/values.schema.json); markdown: the "
            "configuration reference (docs/config-reference.md).",
        ),
    ] = SchemaFormat.json,
    project_dir: ProjectDir = None,
) -> None:
    """Print the environment model: every field with its type, default, bounds and meaning."""
    from autodevhub_cli.core import reference
    from autodevhub_cli.core.errors import ConfigError
    from autodevhub_cli.core.project import find_project

    if output_format is SchemaFormat.markdown:
        sys.stdout.write(reference.markdown())
        return
    try:
        project = find_project(project_dir)
    except ConfigError:
        if project_dir is not None:
            raise
        project = None  # outside a project: the model alone
    sys.stdout.write(json.dumps(reference.json_schema(project), indent=2) + "\n")
