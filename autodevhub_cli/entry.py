"""The console script. A `render` whose output is in the render cache is answered here, before
Typer, pydantic and Jinja are imported (they cost ~150 ms of a fresh process); everything else,
including every option this fast path does not know, goes to the Typer app unchanged.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_VALUE_OPTIONS = {
    "--env": "env",
    "-e": "env",
    "--target": "target",
    "-t": "target",
    "--set": "set",
    "-s": "set",
    "--kube-version": "kube_version",
    "--images": "images",
    "--project-dir": "project_dir",
    "-C": "project_dir",
}


def _parse_render(args: list[str]) -> tuple[dict[str, str], list[str]] | None:
    """(options, --set values) of a plain `render` to stdout, or None for anything else."""
    found: dict[str, str] = {}
    sets: list[str] = []
    i = 0
    while i < len(args):
        name, eq, value = args[i].partition("=")
        if name not in _VALUE_OPTIONS or (eq and not name.startswith("--")):
            return None
        if not eq:
            i += 1
            if i >= len(args) or args[i].startswith("-"):
                return None
            value = args[i]
        field = _VALUE_OPTIONS[name]
        if field == "set":
            sets.append(value)
        else:
            found[field] = value
        i += 1
    return (found, sets) if "env" in found else None


def _cached_render(args: list[str]) -> str | None:
    from autodevhub_cli.core import render_cache

    if not render_cache.enabled():
        return None
    parsed = _parse_render(args)
    if parsed is None:
        return None
    options, sets = parsed
    from autodevhub_cli.core.errors import ConfigError
    from autodevhub_cli.core.project import find_project

    try:
        root = find_project(options.get("project_dir")).root
    except ConfigError:
        return None  # Typer's path reports it
    images = Path(options["images"]) if "images" in options else None
    if images is not None and not images.is_file():
        return None
    cache_key = render_cache.request_key(
        root,
        options["env"],
        options.get("target"),
        options.get("kube_version"),
        sets,
        images,
        os.environ,
    )
    return render_cache.load(cache_key)


def main() -> None:
    """`autodevhub`: the render fast path, else the Typer app."""
    args = sys.argv[1:]
    if args[:1] == ["render"]:
        try:
            cached = _cached_render(args[1:])
        except OSError:
            cached = None
        if cached is not None:
            sys.stdout.write(cached)
            return
    from autodevhub_cli.main import main as full_main

    full_main()
