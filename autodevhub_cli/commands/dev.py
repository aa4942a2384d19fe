"""`autodevhub dev`: deploy once, then bring each edit into the running Compose environment.

Log lines and status lines go to stdout as plain text (never read as Rich markup); the first
deploy's progress goes to stderr, as `deploy`'s does."""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, Annotated

import typer

from autodevhub_cli.commands.options import ProjectDir, Sets, seconds
from autodevhub_cli.commands.progress import Progress

if TYPE_CHECKING:
    from autodevhub_cli.core.logs import LogLine


def dev(
    env: Annotated[
        str, typer.Option("--env", "-e", help="A Compose environment: environments/<ENV>.yaml.")
    ] = "dev",
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            help="Seconds a deploy or a reload may take to become healthy.",
            callback=seconds,
        ),
    ] = 300.0,
    sets: Sets = None,
    project_dir: ProjectDir = None,
) -> None:
    """Deploy, then watch the project: an edit to a synced path reaches the running container
    (restarted, or a command run in it), one that needs a rebuild is built and deployed; then the
    affected components' checks, one status line per change, and the logs. Ctrl-C stops
    watching and leaves the environment running."""
    from autodevhub_cli.commands.logs import format_line
    from autodevhub_cli.core.dev import DevRequest, run_dev

    lock = threading.Lock()
    width = [0]

    def write(text: str) -> None:
        with lock:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    def status(text: str) -> None:
        write(f"[{time.strftime('%H:%M:%S')}] dev: {text}")

    def show_log(line: LogLine) -> None:
        write(format_line(line, width, None))

    watching = threading.Event()

    def announce(text: str) -> None:
        watching.set()
        status(text)

    request = DevRequest(
        environment=env, project_dir=project_dir, sets=sets or (), timeout=timeout or 300.0
    )
    try:
        run_dev(request, announce, show_log, Progress(verbose=False))
    except KeyboardInterrupt as exc:
        if not watching.is_set():
            raise  # the first deploy was interrupted: it says what it left, as `deploy` does
        said = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], str) else ""
        if said:  # a rebuild's deploy was under way: what it did about it
            status(f"stopped watching during a deploy: {' '.join(said.split())}")
        else:
            status("stopped watching; the environment runs as the last change left it")
