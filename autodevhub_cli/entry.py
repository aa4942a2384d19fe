"""The console script, with a fast path for the edit loop's `render --env ENV` to stdout.

A plain `render` (only the options below) runs the core directly instead of through the Typer
app, whose parameter adapters cost ~100 ms of a fresh process; when the render cache holds the
answer it is printed before pydantic and Jinja are imported as well. Any error on the fast path
is not reported from here: the same arguments go to the Typer app, which produces the one error
message and exit code every command uses. Everything else, including every option the fast path
does not know and `AUTODEVHUB_DEBUG=1`, goes to the Typer app unchanged. A render the cache
cannot answer goes to the warm render server when one runs (`render_server.py`).
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
        if args[i] == "--no-validate":
            found["no_validate"] = "1"
            i += 1
            continue
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


def _cache_key(options: dict[str, str], sets: list[str]) -> str | None:
    """The render cache's key for this request, or None when the cache cannot answer it."""
    from autodevhub_cli.core import render_cache

    if not render_cache.enabled() or "no_validate" in options:
        return None  # the cache holds validated output only
    from autodevhub_cli.core.errors import ConfigError
    from autodevhub_cli.core.project import find_project

    try:
        root = find_project(options.get("project_dir")).root
    except ConfigError:
        return None  # the render reports it
    images = Path(options["images"]) if "images" in options else None
    if images is not None and not images.is_file():
        return None
    return render_cache.request_key(
        root,
        options["env"],
        options.get("target"),
        options.get("kube_version"),
        sets,
        images,
        os.environ,
    )


def _render(options: dict[str, str], sets: list[str]) -> str:
    """What `render` prints, without the Typer app."""
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")  # as autodevhub_cli.main does
    from autodevhub_cli.core.pipeline import RenderRequest, render_environment

    request = RenderRequest(
        environment=options["env"],
        project_dir=options.get("project_dir"),
        target=options.get("target"),
        sets=sets,
        kube_version=options.get("kube_version"),
        images=Path(options["images"]) if "images" in options else None,
        validate="no_validate" not in options,
    )
    return render_environment(request).result.to_yaml()


def _fast_render(args: list[str]) -> str | None:
    """The output of a plain `render`, or None to hand the command to the Typer app."""
    if os.environ.get("AUTODEVHUB_DEBUG") == "1":
        return None
    parsed = _parse_render(args)
    if parsed is None:
        return None
    options, sets = parsed
    try:
        from autodevhub_cli.core import render_cache

        cache_key = _cache_key(options, sets)
        cached = render_cache.load(cache_key) if cache_key is not None else None
        if cached is not None:
            return cached
        from autodevhub_cli import render_server

        if render_server.enabled():
            render_server.start()  # for the next render; this one runs here
        from autodevhub_cli.logs import configure_logging

        configure_logging()
        text = _render(options, sets)
        if cache_key is not None:
            render_cache.store(cache_key, text)
        return text
    except KeyboardInterrupt:
        from autodevhub_cli.core.errors import INTERRUPTED
        from autodevhub_cli.main import _print_error

        _print_error("Interrupted", INTERRUPTED)
        raise SystemExit(130) from None
    except Exception:  # the Typer app reports it, the same way as for any command
        return None


def main() -> None:
    """`autodevhub`: a plain render through the warm render server when one runs, else the
    render fast path, else the Typer app."""
    args = sys.argv[1:]
    if args[:1] == ["render"] and _parse_render(args[1:]) is not None:
        from autodevhub_cli import render_server

        if render_server.enabled() and os.environ.get("AUTODEVHUB_DEBUG") != "1":
            code = render_server.run_remote(args)
            if code is not None:  # the server's child wrote the output (or the error)
                raise SystemExit(code)
    if args[:1] == ["render"]:
        text = _fast_render(args[1:])
        if text is not None:
            try:
                sys.stdout.write(text)
                sys.stdout.flush()
            except BrokenPipeError:
                # The reader went away (`| head`): end quietly, as Unix tools do.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                raise SystemExit(1) from None
            return
    from autodevhub_cli.main import main as full_main

    full_main()
