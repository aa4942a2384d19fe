"""The one Jinja environment all templates render with (StrictUndefined, YAML-aware filters)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
import yaml

from autodevhub_cli.core.errors import RenderError

_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def to_yaml(value: Any, indent: int = 0) -> str:
    """Dump a value as block YAML, indented by `indent` spaces after the first line."""
    text = yaml.dump(value, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=4096)
    text = text.rstrip("\n")
    if text.endswith("\n..."):
        text = text[:-4].rstrip("\n")
    if indent:
        text = text.replace("\n", "\n" + " " * indent)
    return text


def to_json(value: Any) -> str:
    """Dump a value as compact JSON (a valid YAML flow scalar or collection)."""
    return json.dumps(value, sort_keys=True)


def from_json(text: str) -> Any:
    """Parse JSON a template produced (a dashboard model), failing with the parser's position."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise RenderError(f"a template produced invalid JSON: {exc}.") from None


def compose_cpus(quantity: str) -> str:
    """A Kubernetes CPU quantity (`500m`) as a Compose `cpus` value (`0.5`)."""
    from autodevhub_cli.core.environment import cpu_millis

    return f"{cpu_millis(quantity) / 1000:g}"


def compose_memory(quantity: str) -> str:
    """A Kubernetes memory quantity (`512Mi`) as a Compose byte value (`536870912`)."""
    from autodevhub_cli.core.environment import memory_bytes

    return str(int(memory_bytes(quantity)))


def short_hash(value: str, length: int = 10) -> str:
    """A short, stable hex digest of a string (names that must change with an image)."""
    import hashlib

    return hashlib.sha256(value.encode()).hexdigest()[:length]


def _cache_dir() -> Path:
    from autodevhub_cli.core.render_cache import cache_home

    return cache_home() / f"jinja-{jinja2.__version__}"


def template_environment(templates_dir: Path) -> jinja2.Environment:
    """The Jinja environment for a project's templates: strict, deterministic, cached bytecode."""
    cache: jinja2.BytecodeCache | None = None
    try:
        folder = _cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        cache = jinja2.FileSystemBytecodeCache(str(folder))
    except OSError:
        cache = None  # a read-only home only costs speed
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        bytecode_cache=cache,
    )
    env.filters["to_yaml"] = to_yaml
    env.filters["to_json"] = to_json
    env.filters["compose_cpus"] = compose_cpus
    env.filters["compose_memory"] = compose_memory
    env.filters["short_hash"] = short_hash
    env.filters["from_json"] = from_json
    return env


def render_template(env: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
    """Render one template; errors name the template, its line and what to fix."""
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateSyntaxError as exc:
        where = f"templates/{exc.name or name}" + (f" line {exc.lineno}" if exc.lineno else "")
        raise RenderError(
            f"{where}: template syntax error: {exc.message}.",
            hint="Fix the Jinja syntax at that line.",
        ) from None
    except jinja2.UndefinedError as exc:
        tb = sys.exc_info()[2]
        where = _template_location(tb, name)
        message = (exc.message or "undefined value").replace("autodevhub_cli.core.environment.", "")
        raise RenderError(
            f"{where}: {message}.",
            hint="The template uses a value the environment model does not have: fix the "
            "template, or add the field to the environment model and the environment files.",
        ) from None
    except jinja2.TemplateError as exc:
        raise RenderError(f"templates/{name}: {exc}.") from None
    except RenderError as exc:
        raise RenderError(f"templates/{name}: {exc.message}", hint=exc.hint) from None


def _template_location(tb: TracebackType | None, fallback: str) -> str:
    """The innermost template frame of a traceback, as `templates/<name> line N`."""
    found = f"templates/{fallback}"
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        marker = f"{os.sep}templates{os.sep}"
        if filename.endswith(".j2") and marker in filename:
            found = "templates/" + filename.split(marker, 1)[1] + f" line {tb.tb_lineno}"
        tb = tb.tb_next
    return found
