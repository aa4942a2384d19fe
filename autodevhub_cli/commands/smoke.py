"""`autodevhub smoke-test`: run the smoke checks against what is deployed.

Check names, details and URLs come from outside (the environment file, the servers' answers):
they are printed as plain text, never read as Rich markup, and the core has already taken
their secrets out.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from autodevhub_cli.commands import summary
from autodevhub_cli.commands.options import Env, Output, OutputFormat, ProjectDir, Sets, seconds
from autodevhub_cli.commands.progress import Progress

if TYPE_CHECKING:
    from autodevhub_cli.core.smoke import SmokeResult


def smoke_test(
    env: Env,
    urls: Annotated[
        list[str] | None,
        typer.Option(
            "--url",
            help="Reach a component at this URL, as NAME=URL (repeatable; over smoke.urls).",
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Deadline in seconds for retries.", callback=seconds),
    ] = None,
    output: Output = OutputFormat.text,
    sets: Sets = None,
    project_dir: ProjectDir = None,
) -> None:
    """Run the smoke checks against a deployed environment; exit code 3 when one fails."""
    from autodevhub_cli.core.errors import SmokeCheckError
    from autodevhub_cli.core.operate import smoke_test as run_smoke

    progress = Progress(verbose=False)
    result = run_smoke(env, project_dir, sets or (), urls or (), timeout, progress)
    summary.append(
        f"### autodevhub smoke-test --env {env}: {'passed' if result.ok else 'FAILED'}\n\n"
        + summary.smoke_table(result.to_dict())
    )
    if output is OutputFormat.json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        table(result)
    if not result.ok:
        raise SmokeCheckError(f"{len(result.failed)} smoke check(s) failed: {result.summary()}")


def table(result: SmokeResult) -> None:
    """The checks as a table on stdout; every text in it printed literally."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    where = ", ".join(f"{name} {url}" for name, url in result.urls.items()) or "no URL"
    shown = Table(title=Text(f"smoke checks ({where})"))
    for column in ("check", "result", "detail", "seconds"):
        shown.add_column(column)
    for check in result.checks:
        mark = Text("ok", style="green") if check.ok else Text("FAILED", style="bold red")
        shown.add_row(Text(check.name), mark, Text(check.detail), f"{check.seconds:.2f}")
    Console(soft_wrap=False, highlight=False).print(shown)
