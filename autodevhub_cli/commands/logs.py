"""`autodevhub logs`: what every replica of the environment's components printed, in time order.

Log lines come from the running application: they are written as plain text (never read as
Rich markup), after the core has masked the secret values it knows."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from autodevhub_cli.commands.options import (
    Env,
    Kubeconfig,
    KubeContext,
    Output,
    OutputFormat,
    ProjectDir,
    Sets,
)

if TYPE_CHECKING:
    from autodevhub_cli.core.logs import LogLine

# One colour per component on a terminal (NO_COLOR turns them off), as `docker compose logs`.
_COLOURS = ("36", "33", "32", "35", "34", "31", "96", "93", "92", "95")


def format_line(line: LogLine, width: list[int], colours: dict[str, str] | None) -> str:
    """`component/replica | text` (`component/replica (preview) | text` for a blue-green pod),
    the prefixes padded to the widest seen so far (`width`); with `colours` (a terminal), one
    colour per component."""
    prefix = f"{line.component}/{line.short}" + (f" ({line.role})" if line.role else "")
    width[0] = max(width[0], len(prefix))
    shown = prefix.ljust(width[0])
    if colours is not None:
        code = colours.setdefault(line.component, _COLOURS[len(colours) % len(_COLOURS)])
        shown = f"\x1b[{code}m{shown}\x1b[0m"
    return f"{shown} | {line.text}"


def logs(
    env: Env,
    components: Annotated[
        list[str] | None,
        typer.Argument(help="Components to show (default: all of them).", show_default=False),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Keep printing new lines, from replicas that start later too; Ctrl-C ends it.",
        ),
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only lines of the last DURATION (30s, 10m, 2h, 1d).",
            show_default=False,
        ),
    ] = None,
    tail: Annotated[
        int | None,
        typer.Option(
            "--tail", "-n", min=0, help="At most N last lines of each replica.", show_default=False
        ),
    ] = None,
    previous: Annotated[
        bool,
        typer.Option(
            "--previous",
            "-p",
            help="The container that ran before the current one, such as one that crashed "
            "(Kubernetes).",
        ),
    ] = False,
    output: Output = OutputFormat.text,
    context: KubeContext = None,
    kubeconfig: Kubeconfig = None,
    sets: Sets = None,
    project_dir: ProjectDir = None,
) -> None:
    """Show the log of every replica of the environment's components (on Compose the engine's
    containers, on Kubernetes the pods, a blue-green preview's included), merged in time order;
    each line starts with its component and replica."""
    from autodevhub_cli.core.logs import LogQuery, parse_since
    from autodevhub_cli.core.operate import logs as read_logs
    from autodevhub_cli.core.targets import TargetOptions

    query = LogQuery(
        components=tuple(components or ()),
        since=parse_since(since) if since is not None else None,
        tail=tail,
        previous=previous,
        follow=follow,
    )

    def note(message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    lines = read_logs(
        env,
        project_dir,
        sets or (),
        TargetOptions(context=context, kubeconfig=kubeconfig),
        query,
        note,
    )
    colour = output is OutputFormat.text and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    colours: dict[str, str] | None = {} if colour else None
    width = [0]
    write = sys.stdout.write
    try:
        for line in lines:
            if output is OutputFormat.json:
                write(json.dumps(line.to_dict()) + "\n")
            else:
                write(format_line(line, width, colours) + "\n")
            if follow:
                sys.stdout.flush()
    except KeyboardInterrupt:
        if not follow:
            raise
        # Ctrl-C (or SIGTERM) is how a follow ends: no message, exit code 0.
    finally:
        sys.stdout.flush()
