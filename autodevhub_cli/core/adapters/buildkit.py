"""BuildKit builds through the Docker Compose v2 binary.

Compose carries its own BuildKit client, so the engine's BuildKit builds the image (stages run in
parallel, only changed files of the context are sent, the layer cache is BuildKit's) without the
buildx plugin. The image lands in the engine's image store, where push and inspect find it.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import yaml

from autodevhub_cli.core.adapters import process
from autodevhub_cli.core.adapters.compose import compose_binary
from autodevhub_cli.core.adapters.docker_engine import BuildLog, build_failure
from autodevhub_cli.core.errors import BuildError

log = logging.getLogger("autodevhub.buildkit")
# `#7 [runtime 3/9] COPY --from=builder /opt/venv /opt/venv`
_VERTEX = re.compile(r"^#(\d+) \[([^\]]+)\] (.*)$")
# `#7 1.234 a line the step printed`
_OUTPUT = re.compile(r"^#(\d+) \d+\.\d+ (.*)$")
_ERROR = re.compile(r"^#(\d+) ERROR: (.*)$")


def _escape(value: str) -> str:
    # Compose interpolates `$` in the file it reads; the values here are literal.
    return value.replace("$", "$$")


def build(
    *,
    image: str,
    context_dir: Path,
    dockerfile: str,
    tag: str,
    buildargs: dict[str, str],
    labels: dict[str, str],
    stage: str | None = None,
    nocache: bool = False,
    on_line: Callable[[str], None] | None = None,
) -> BuildLog:
    """Build `tag` from `context_dir` with BuildKit; fail with the step and its last log lines."""
    name = re.sub(r"[^a-z0-9_-]", "-", image.lower()) or "image"
    build_spec: dict[str, object] = {
        "context": str(context_dir),
        "dockerfile": dockerfile,
        "args": {k: _escape(v) for k, v in buildargs.items()},
        "labels": {k: _escape(v) for k, v in labels.items()},
    }
    if stage:
        build_spec["target"] = stage
    spec: dict[str, object] = {
        "name": f"autodevhub-build-{name}-{os.getpid()}",
        "services": {name: {"image": tag, "build": build_spec}},
    }
    with tempfile.TemporaryDirectory(prefix="autodevhub-build-") as folder:
        compose_file = Path(folder) / "compose.yaml"
        compose_file.write_text(yaml.safe_dump(spec, sort_keys=False))
        command = [compose_binary(), "--progress", "plain", "-f", str(compose_file), "build"]
        command += [*(["--no-cache"] if nocache else []), name]
        log.info("buildkit: %s (dockerfile %s, args %s)", tag, dockerfile, sorted(buildargs))
        proc = process.start(
            command,
            what=f"Docker Compose, to build the {image} image,",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        record, failure = _follow(proc, on_line, name)
        code = proc.wait()
    if code == 0:
        return record
    if not record.step:
        # Compose stopped before BuildKit ran a step: no BuildKit builder was usable.
        raise BuildError(
            f"The {image} image could not be built with BuildKit (docker compose build "
            f"exited {code}): {failure or 'no message'}.",
            hint="Use an engine with BuildKit (Docker 18.09 or later; the buildx plugin where "
            "Compose asks for it), or set build.builder: classic in the environment file.",
        )
    raise build_failure(image, record, failure or f"docker compose build exited {code}")


def _follow(
    proc: subprocess.Popen[str], on_line: Callable[[str], None] | None, build_name: str
) -> tuple[BuildLog, str]:
    """Read the plain progress stream: steps by vertex, each step's output, the error."""
    record = BuildLog(lines=[])
    steps: dict[str, str] = {}
    output: dict[str, list[str]] = {}
    failed = ""
    failure = ""
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.rstrip("\n")
        if not line.strip():
            continue
        if on_line is not None:
            on_line(line)
        vertex = _VERTEX.match(line)
        if vertex:
            name = vertex.group(2).removeprefix(f"{build_name} ")
            steps[vertex.group(1)] = f"[{name}] {vertex.group(3)}"
            record.step = steps[vertex.group(1)]
            continue
        printed = _OUTPUT.match(line)
        if printed:
            kept = output.setdefault(printed.group(1), [])
            kept.append(printed.group(2))
            del kept[:-40]
            continue
        error = _ERROR.match(line)
        if error and not failed:
            failed = error.group(1)
            failure = error.group(2)
            continue
        if "failed to solve:" in line and not failure:
            failure = line.split("failed to solve:", 1)[1].strip()
        elif line.startswith(("Error", "error")) and not failure:
            failure = line
    if failed:
        record.step = steps.get(failed, record.step)
        record.lines = output.get(failed, [])
    return record, failure
