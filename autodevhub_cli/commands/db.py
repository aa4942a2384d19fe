"""`autodevhub db backup` and `autodevhub db restore`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from autodevhub_cli.commands.options import Env, Output, OutputFormat, ProjectDir, typer_app

if TYPE_CHECKING:
    from autodevhub_cli.core.environment import Environment
    from autodevhub_cli.core.project import Project

app = typer_app(help="Back up and restore an environment's database.", no_args_is_help=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="DATABASE_URL",
        help="Database to use (default: $DATABASE_URL; for Compose, the SQLite file in the "
        "environment's volume).",
        show_default=False,
        show_envvar=False,
    ),
]


def _target(
    env: str, database_url: str | None, project_dir: Path | None
) -> tuple[Project, Environment, str]:
    """The project, the environment and the database URL a db command works on."""
    from autodevhub_cli.core import backup as backups
    from autodevhub_cli.core.config import load_environment
    from autodevhub_cli.core.project import find_project

    project = find_project(project_dir)
    environment = load_environment(project, env)
    return project, environment, backups.database_url_for(environment, database_url)


@app.command("backup")
def backup(
    env: Env,
    to: Annotated[
        Path | None,
        typer.Option("--to", help="Folder for backups (default .autodevhub/backups/ENV)."),
    ] = None,
    retention_days: Annotated[
        int | None,
        typer.Option(
            "--retention-days", help="Delete older backups (default: backups.retention_days)."
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    output: Output = OutputFormat.text,
    project_dir: ProjectDir = None,
) -> None:
    """Back up the database (pg_dump, or SQLite's backup API) with a SHA-256 checksum."""
    from autodevhub_cli.core import backup as backups

    project, environment, url = _target(env, database_url, project_dir)
    folder = to or project.state_dir / "backups" / env
    days = retention_days if retention_days is not None else environment.backups.retention_days
    made = backups.backup(url, folder, prefix=f"{environment.app}-{env}", retention_days=days)
    if output is OutputFormat.json:
        sys.stdout.write(json.dumps(made.to_dict(), indent=2) + "\n")
        return
    sys.stdout.write(
        f"Backed up {made.database} to {made.path} ({made.size_bytes} bytes, sha256 "
        f"{made.sha256[:16]}..., {made.seconds:.1f}s).\n"
    )
    for name in made.deleted:
        sys.stdout.write(f"  deleted {name} (older than {days} days)\n")


@app.command("restore")
def restore(
    env: Env,
    source: Annotated[
        Path, typer.Option("--from", help="The backup file to restore (its .sha256 is checked).")
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite a database that holds data.")
    ] = False,
    database_url: DatabaseUrl = None,
    output: Output = OutputFormat.text,
    project_dir: ProjectDir = None,
) -> None:
    """Restore a backup after checking its checksum; a non-empty database needs --force."""
    from autodevhub_cli.core import backup as backups

    _, _, url = _target(env, database_url, project_dir)
    result = backups.restore(url, source, force=force)
    if output is OutputFormat.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    sys.stdout.write(
        f"Restored {source.name} into {result['database']} ({result['seconds']:.1f}s).\n"
    )
