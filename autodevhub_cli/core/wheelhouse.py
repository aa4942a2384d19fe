"""An image's wheelhouse: its pinned Python dependencies as wheels, fetched on the host.

Containers here reach no package index, so the image installs with `pip --no-index` from a
wheelhouse/ folder in its build context. Wheels are fetched for the image's platform and Python
(not the host's), and kept per requirements hash so an unchanged lock file fetches nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from autodevhub_cli.core.errors import BuildError

log = logging.getLogger("autodevhub.wheelhouse")

# manylinux tags a glibc-based image (Debian bookworm: glibc 2.36) accepts, newest first.
_MANYLINUX = ("2_36", "2_34", "2_31", "2_28", "2_27", "2_24", "2_17", "2_12", "2_5")
_MARKER = ".complete"


def cache_root() -> Path:
    """Where wheelhouses are kept: shared by projects, keyed by requirements, platform, Python."""
    from autodevhub_cli.core.render_cache import cache_home

    return cache_home() / "wheelhouse"


def platform_tags(arch: str) -> list[str]:
    """pip `--platform` tags for a Linux image architecture (x86_64, aarch64)."""
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)
    return [f"manylinux_{v}_{machine}" for v in _MANYLINUX] + [f"linux_{machine}"]


def prepare(
    requirements: Path, cache_root: Path, *, arch: str = "x86_64", python: str = "3.11"
) -> Path:
    """A folder of wheels satisfying `requirements` for the image; reused when unchanged."""
    key = hashlib.sha256(requirements.read_bytes() + f"\0{arch}\0{python}".encode()).hexdigest()
    folder = cache_root / key[:16]
    if (folder / _MARKER).exists():
        return folder
    staging = cache_root / f".{key[:16]}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--quiet",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        python,
        *[arg for tag in platform_tags(arch) for arg in ("--platform", tag)],
        "--dest",
        str(staging),
        "-r",
        str(requirements),
    ]
    log.info("fetching wheels: %s", " ".join(command))
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise BuildError(
            f"Could not fetch the wheels of {requirements.name} for Python {python} on "
            f"linux/{arch}:\n{tail}",
            hint="Check the network to the package index, or that every pinned package has a "
            "wheel for that platform (re-pin the lock file).",
        )
    (staging / _MARKER).write_text("ok\n")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)
    return folder
