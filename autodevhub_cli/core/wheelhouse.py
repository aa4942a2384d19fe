"""An image's wheelhouse: its pinned Python dependencies as wheels, fetched on the host.

Containers here reach no package index, so the image installs with `pip --no-index` from a
wheelhouse/ folder in its build context. Wheels are fetched for the Python, libc and CPU of the
base image that installs them (not the host's), which that image reports once (`image_python`),
and kept per requirements hash and platform so an unchanged lock file fetches nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from autodevhub_cli.core.adapters import process
from autodevhub_cli.core.errors import BuildError, RecordError
from autodevhub_cli.core.records import read_json, write_json

if TYPE_CHECKING:
    from docker import DockerClient

log = logging.getLogger("autodevhub.wheelhouse")

_MARKER = ".complete"
# What a base image's python3 reports about itself: version, implementation, libc, CPU.
_PROBE = """
import glob, json, os, platform, re, subprocess, sys
libc, version = "", ""
try:
    libc, version = os.confstr("CS_GNU_LIBC_VERSION").split()
except (AttributeError, ValueError, OSError):
    libc, version = platform.libc_ver()
if not libc:
    for loader in glob.glob("/lib/ld-musl-*.so.1"):
        libc = "musl"
        said = subprocess.run([loader], capture_output=True, text=True).stderr
        found = re.search(r"Version (\\d+\\.\\d+)", said)
        version = found.group(1) if found else ""
print(json.dumps({
    "version": "%d.%d" % sys.version_info[:2],
    "implementation": sys.implementation.name,
    "libc": libc,
    "libc_version": version,
    "machine": platform.machine(),
}))
"""
_IMPLEMENTATIONS = {"cpython": "cp", "pypy": "pp"}


@dataclass(frozen=True)
class ImagePython:
    """The Python an image installs wheels into: version, implementation, libc and CPU."""

    version: str = "3.11"
    implementation: str = "cpython"
    libc: str = "glibc"
    libc_version: str = "2.36"  # Debian bookworm
    machine: str = "x86_64"

    def platform_tags(self) -> list[str]:
        """pip `--platform` tags this Python accepts, newest first."""
        machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(self.machine, self.machine)
        major, _, minor = self.libc_version.partition(".")
        newest = int(minor) if minor.isdigit() else 0
        if self.libc == "musl":
            tags = [f"musllinux_{major}_{m}_{machine}" for m in range(newest, -1, -1)]
        else:
            minors = [m for m in (*range(newest, 16, -1), 12, 5) if m <= newest]
            tags = [f"manylinux_2_{m}_{machine}" for m in minors]
            legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
            tags += [f"{name}_{machine}" for m, name in legacy.items() if m <= newest]
        return [*tags, f"linux_{machine}"]

    def describe(self) -> str:
        """`CPython 3.12 on linux/x86_64 (glibc 2.36)`."""
        name = {"cpython": "CPython", "pypy": "PyPy"}.get(self.implementation, self.implementation)
        return f"{name} {self.version} on linux/{self.machine} ({self.libc} {self.libc_version})"


def cache_root() -> Path:
    """Where wheelhouses are kept: shared by projects, keyed by requirements, platform, Python."""
    from autodevhub_cli.core.render_cache import cache_home

    return cache_home() / "wheelhouse"


def image_python(client: DockerClient, image_id: str, reference: str, field: str) -> ImagePython:
    """The Python of a base image, from running its python3 once; kept by image ID, so a
    warm build runs no container."""
    from autodevhub_cli.core.adapters import docker_engine
    from autodevhub_cli.core.render_cache import cache_home

    cached = cache_home() / "image-python" / f"{image_id.removeprefix('sha256:')}.json"
    try:
        known = read_json(cached)
        if isinstance(known, dict):
            return ImagePython(**known)
    except (OSError, ValueError, TypeError):  # unreadable or stale: ask the image again
        pass
    ran = docker_engine.run_once(client, image_id, ["python3", "-c", _PROBE])
    found = _read_probe(ran.output) if ran.exit_code == 0 else None
    if found is None:
        if ran.exit_code == 127 or "executable file not found" in ran.output:
            problem = "it has no python3 to run"
        elif ran.exit_code in (None, 126):
            problem = "its python3 could not be started"
        elif ran.exit_code == 0:
            problem = "its python3 reports neither glibc nor musl, so no wheel tag fits"
        else:
            problem = f"its python3 failed (exit code {ran.exit_code})"
        raise BuildError(
            f"The wheelhouse is installed into the base image {reference} ({field}), but "
            f"{problem}: {_tail(ran.output)}.",
            hint=f"Set {field} to an image with python3 on its PATH (the stage that copies "
            "wheelhouse/ installs the wheels with it), or drop the component's build.wheelhouse.",
        )
    try:
        write_json(cached, asdict(found))
    except RecordError as exc:  # a cache that cannot be written costs a container run next time
        log.info("could not keep %s: %s", cached, exc)
    return found


def _read_probe(output: str) -> ImagePython | None:
    for line in reversed(output.strip().splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("libc") in ("glibc", "musl"):
            fields = ImagePython.__dataclass_fields__
            return ImagePython(**{k: str(v) for k, v in data.items() if k in fields})
        return None
    return None


def _tail(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return " / ".join(lines[-3:]) or "no output"


def prepare(requirements: Path, cache_root: Path, *, python: ImagePython | None = None) -> Path:
    """A folder of wheels satisfying `requirements` for the image; reused when unchanged."""
    python = python or ImagePython()
    platforms = python.platform_tags()
    implementation = _IMPLEMENTATIONS.get(python.implementation)
    if implementation is None:
        raise BuildError(
            f"The wheelhouse of {requirements.name} cannot be fetched for {python.describe()}: "
            "pip fetches wheels for CPython and PyPy only.",
            hint="Use a CPython base image for the stage that installs the wheelhouse.",
        )
    key = hashlib.sha256(
        requirements.read_bytes()
        + f"\0{python.version}\0{implementation}\0{' '.join(platforms)}".encode()
    ).hexdigest()
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
        implementation,
        "--python-version",
        python.version,
        *[arg for tag in platforms for arg in ("--platform", tag)],
        "--dest",
        str(staging),
        "-r",
        str(requirements),
    ]
    log.info("fetching wheels for %s", python.describe())
    proc = process.run(command, what="pip download", check=False)
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise BuildError(
            f"Could not fetch the wheels of {requirements.name} for {python.describe()}:\n{tail}",
            hint="Check the network to the package index, or that every pinned package has a "
            "wheel for that platform (re-pin the lock file).",
        )
    (staging / _MARKER).write_text("ok\n")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)
    return folder
