"""Every external program autodevhub starts goes through here (Docker Compose, kubectl, git, pip,
pg_dump...): one log line when it starts and one when it ends (seen with AUTODEVHUB_DEBUG=1), and
every way it can fail as a ToolError naming the command, its exit code and its output's tail:
not installed, not startable, past its time limit, a non-zero exit. A command line holding a
secret is logged and reported as `shown`, never as run."""

from __future__ import annotations

import logging
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

from autodevhub_cli.core.errors import ToolError

log = logging.getLogger("autodevhub.process")


def run(
    command: Sequence[str],
    *,
    what: str,
    timeout: float | None = None,
    check: bool = True,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    shown: Sequence[str] | None = None,
    missing_hint: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a program to its end and capture its output (text). `what` names it in messages;
    with `check`, a non-zero exit is a ToolError too."""
    said = list(shown if shown is not None else command)
    log.info("process: %s", shlex.join(said))
    started = time.monotonic()
    try:
        proc = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
            env=dict(env) if env is not None else None,
        )
    except subprocess.TimeoutExpired as exc:
        taken = time.monotonic() - started
        log.info("process: %s stopped after %.3fs (its time limit)", said[0], taken)
        raise ToolError(
            f"{what} did not finish within {timeout:g}s.",
            command=said,
            returncode=None,
            output=_text(exc.stdout) + _text(exc.stderr),
        ) from None
    except FileNotFoundError:
        raise ToolError(
            f"{what} could not be started: {said[0]} is not installed (or not on PATH).",
            command=said[:1],
            returncode=None,
            hint=missing_hint,
        ) from None
    except OSError as exc:
        raise ToolError(
            f"{what} could not be started: {exc}.", command=said, returncode=None, hint=missing_hint
        ) from None
    log.info("process: %s exited %d in %.3fs", said[0], proc.returncode, time.monotonic() - started)
    if check and proc.returncode != 0:
        raise ToolError(
            f"{what} failed.",
            command=said,
            returncode=proc.returncode,
            output=(proc.stdout or "") + (proc.stderr or ""),
        )
    return proc


def start(
    command: Sequence[str], *, what: str, shown: Sequence[str] | None = None, **options: Any
) -> subprocess.Popen[str]:
    """Start a program that runs beside autodevhub (its output read as it comes: a build's
    progress, a port-forward); the caller waits for it and ends it."""
    said = list(shown if shown is not None else command)
    log.info("process: %s (started in the background)", shlex.join(said))
    try:
        return subprocess.Popen(list(command), text=True, **options)
    except OSError as exc:
        raise ToolError(
            f"{what} could not be started: {exc}.", command=said, returncode=None
        ) from None


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data
