"""What the image benchmarks share: the stand-in base images, a throwaway project copy, a timer."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The Debian stand-ins scripts/ci/provision-docker.sh makes (no image can be pulled here).
BASES = {
    "PYTHON": "autodevhub-ci/python:3.11-bookworm",
    "NODE": "autodevhub-ci/node:18-bookworm",
    "NGINX": "autodevhub-ci/nginx:1.22-bookworm",
}


def base_image_env() -> dict[str, str]:
    """The AUTODEVHUB__BUILD__ARGS__*_IMAGE overrides that point the builds at BASES."""
    return {f"AUTODEVHUB__BUILD__ARGS__{k}_IMAGE": v for k, v in BASES.items()}


def copy_project(prefix: str) -> Path:
    """A temporary copy of the project's environments, templates and service."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    for folder in ("environments", "templates", "service"):
        shutil.copytree(
            REPO / folder,
            work / folder,
            ignore=shutil.ignore_patterns("__pycache__", "dist", "var", "node_modules"),
        )
    return work


def timed(cmd: list[str], env: dict[str, str], cwd: Path, expect: int = 0) -> float:
    """Seconds `cmd` took; the benchmark stops with its output if it exits otherwise."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != expect:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return elapsed
