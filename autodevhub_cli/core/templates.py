"""The one Jinja environment all templates render with (StrictUndefined, YAML-aware filters)."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import jinja2
import jinja2.exceptions
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from autodevhub_cli.core.errors import RenderError

if TYPE_CHECKING:
    from jinja2.runtime import Context

_BaseDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BaseDumper):  # type: ignore[misc]
    """PyYAML quotes text that YAML 1.1 would read as another type; the readers of what is
    dumped here (Kubernetes, Compose: Go's YAML 1.2) also read `0o17` as a number and `.inf`
    or `.NaN` spelled other ways: those are quoted too, so text stays text for every reader."""


_Dumper.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?0o[0-7]+$"), list("-+0"))
_Dumper.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\.inf|\.Inf|\.INF)$|^(\.nan|\.NaN|\.NAN)$"),
    list("-+."),
)


def to_yaml(value: object, indent: int = 0) -> str:
    """Dump a value as block YAML, indented by `indent` spaces after the first line."""
    text = yaml.dump(value, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=4096)
    text = text.rstrip("\n")
    if text.endswith("\n..."):
        text = text[:-4].rstrip("\n")
    if indent:
        text = text.replace("\n", "\n" + " " * indent)
    return text


def to_json(value: object) -> str:
    """Dump a value as compact JSON (a valid YAML flow scalar or collection)."""
    return json.dumps(value, sort_keys=True)


def from_json(text: str) -> object:
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


# The template library shipped with autodevhub: `{% import "autodevhub/kubernetes.j2" as k
# with context %}` from any project's templates.
LIBRARY_DIR = Path(__file__).resolve().parent.parent / "library"
LIBRARY_PREFIX = "autodevhub/"


class _ProjectLoader(jinja2.FileSystemLoader):
    """Templates from the project's templates/ folder, and autodevhub's library under the name
    `autodevhub/`. A project name that resolves (through a symbolic link) outside templates/,
    or to anything but a regular file (a FIFO would block every render), is refused with the
    path it points to."""

    def __init__(self, templates_dir: Path) -> None:
        super().__init__(str(templates_dir))
        self._root = os.path.realpath(templates_dir)
        self._library = jinja2.FileSystemLoader(str(LIBRARY_DIR))

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        if template.startswith(LIBRARY_PREFIX):
            try:
                return self._library.get_source(environment, template[len(LIBRARY_PREFIX) :])
            except jinja2.TemplateNotFound:
                raise jinja2.TemplateNotFound(template) from None
        pieces = jinja2.loaders.split_template_path(template)
        path = os.path.join(self._root, *pieces)
        real = os.path.realpath(path)
        if os.path.commonpath([real, self._root]) != self._root:
            raise RenderError(
                f"templates/{template} is a link to {real}, outside the project's templates/ "
                "folder; templates read only files of that folder.",
                hint="Copy the file into templates/ instead of linking to it.",
            )
        if os.path.exists(real) and not os.path.isfile(real):
            raise RenderError(
                f"templates/{template} is not a regular file; templates are files.",
                hint="Remove it, or replace it with the file it stands for.",
            )
        return super().get_source(environment, template)


# The most a `*` or `**` in a template may make: a million items or characters, a 4096-bit
# integer. Far beyond any manifest; a `'x' * 10 ** 10` fails at once instead of eating memory.
MAX_REPEAT = 1_000_000
MAX_POWER_BITS = 4096


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with `*` and `**` bounded."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: object, right: object) -> object:
        repeats = [
            (len(seq), times)
            for seq, times in ((left, right), (right, left))
            if isinstance(seq, str | list | tuple) and isinstance(times, int)
        ]
        if operator == "*" and repeats and repeats[0][0] * repeats[0][1] > MAX_REPEAT:
            raise jinja2.exceptions.SecurityError(
                f"repeating {repeats[0][0]} items {repeats[0][1]} times makes more than "
                f"{MAX_REPEAT:,}"
            )
        if (
            operator == "**"
            and isinstance(left, int)
            and isinstance(right, int)
            and right > 0
            and abs(left) > 1
            and right * abs(left).bit_length() > MAX_POWER_BITS
        ):
            raise jinja2.exceptions.SecurityError(
                f"{left} ** {right} has more than {MAX_POWER_BITS} bits"
            )
        return super().call_binop(context, operator, left, right)


def template_environment(templates_dir: Path) -> jinja2.Environment:
    """The Jinja environment for a project's templates: sandboxed and immutable (a template
    reads values and calls the filters below; it cannot reach Python internals, the process or
    files outside templates/), strict, deterministic, cached bytecode."""
    from autodevhub_cli.core.render_cache import enabled

    cache: jinja2.BytecodeCache | None = None
    if enabled():
        try:
            folder = _cache_dir()
            folder.mkdir(parents=True, exist_ok=True)
            cache = jinja2.FileSystemBytecodeCache(str(folder))
        except OSError:
            cache = None  # a read-only home only costs speed
    env = _Sandbox(
        loader=_ProjectLoader(templates_dir),
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


def render_template(env: jinja2.Environment, name: str, context: Mapping[str, object]) -> str:
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
    except jinja2.exceptions.SecurityError as exc:
        where = _template_location(sys.exc_info()[2], name)
        raise RenderError(
            f"{where}: {str(exc).rstrip('.')}: templates run in a sandbox and read values only.",
            hint="Use the environment's values and autodevhub's filters instead.",
        ) from None
    except jinja2.TemplateNotFound as exc:
        where = _template_location(sys.exc_info()[2], name)
        if str(exc.name).startswith(LIBRARY_PREFIX):
            shipped = ", ".join(LIBRARY_PREFIX + p.name for p in sorted(LIBRARY_DIR.glob("*.j2")))
            raise RenderError(
                f"{where}: autodevhub's template library has no {exc.name!r} (it has {shipped}).",
                hint="Fix the name; the names under autodevhub/ are the library's.",
            ) from None
        raise RenderError(
            f"{where}: the template {exc.name!r} it includes or imports does not exist in "
            "templates/.",
            hint="Fix the name, or add the template.",
        ) from None
    except jinja2.TemplateError as exc:
        where = _template_location(sys.exc_info()[2], name)
        raise RenderError(f"{where}: {exc}.") from None
    except RenderError as exc:
        if exc.message.startswith("templates/"):
            raise
        raise RenderError(f"templates/{name}: {exc.message}", hint=exc.hint) from None
    except MemoryError:
        raise RenderError(
            f"templates/{name}: rendering it ran out of memory.",
            hint="Look for a loop or a repetition that grows without bound.",
        ) from None
    except RecursionError:
        where = _template_location(sys.exc_info()[2], name)
        raise RenderError(
            f"{where}: the template recurses without end (a macro or include that calls itself).",
            hint="Give the recursion a condition that stops it.",
        ) from None
    except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError) as exc:
        where = _template_location(sys.exc_info()[2], name)
        raise RenderError(
            f"{where}: {type(exc).__name__}: {str(exc).rstrip('.')}.",
            hint="Fix the expression at that line (or the value it works on).",
        ) from None


def _template_location(tb: TracebackType | None, fallback: str) -> str:
    """The innermost template frame of a traceback, as `templates/<name> line N`."""
    found = f"templates/{fallback}"
    library = str(LIBRARY_DIR) + os.sep
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        marker = f"{os.sep}templates{os.sep}"
        if filename.endswith(".j2") and filename.startswith(library):
            found = (
                f"{LIBRARY_PREFIX}{filename[len(library) :]} line {tb.tb_lineno} (autodevhub's "
                f"template library, called from templates/{fallback})"
            )
        elif filename.endswith(".j2") and marker in filename:
            found = "templates/" + filename.split(marker, 1)[1] + f" line {tb.tb_lineno}"
        tb = tb.tb_next
    return found
