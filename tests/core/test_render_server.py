"""The warm render server: a plain `render` handed to it prints exactly what a render in its
own process prints (output, errors, exit code), and the caller imports none of the heavy
libraries; without a server, or with it turned off, the render runs in-process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import copy_project

PROBE = """
import sys
from autodevhub_cli.entry import main
sys.argv = ["autodevhub", "render", *sys.argv[1:]]
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
heavy = sorted(m for m in ("pydantic", "jinja2", "yaml", "typer") if m in sys.modules)
print(f"exit={code} heavy={','.join(heavy) or 'none'}", file=sys.stderr)
"""


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


@pytest.fixture()
def environ(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "AUTODEVHUB_NO_SERVER")}
    # A short runtime folder, as /run/user/<uid> is (a socket path has at most 107 bytes).
    runtime = Path(tempfile.mkdtemp(prefix="adh-"))
    env["XDG_RUNTIME_DIR"] = str(runtime)
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    yield env
    shutil.rmtree(runtime, ignore_errors=True)


def _call(module_code: str, environ: dict[str, str]) -> str:
    return subprocess.run(
        [sys.executable, "-c", module_code], env=environ, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture()
def server(environ: dict[str, str]) -> Iterator[Path]:
    path = Path(
        _call("from autodevhub_cli import render_server as s; print(s.socket_path())", environ)
    )
    _call("from autodevhub_cli import render_server as s; s.start()", environ)
    deadline = time.monotonic() + 60
    while not path.exists():
        assert time.monotonic() < deadline, "the render server did not start"
        time.sleep(0.1)
    yield path
    _call("from autodevhub_cli import render_server as s; s.stop_servers()", environ)


def _render(project: Path, environ: dict[str, str], *args: str) -> tuple[int, str, str, str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args, "-C", str(project)],
        env=environ,
        capture_output=True,
        text=True,
    )
    *err, probe = proc.stderr.rstrip("\n").split("\n")
    code, heavy = (part.split("=", 1)[1] for part in probe.split(" "))
    return int(code), heavy, proc.stdout, "\n".join(err)


@pytest.mark.parametrize(
    "args",
    [
        ("--env", "prod", "--set", "components.frontend.replicas=7"),
        ("--env", "dev", "--set", "components.backend.env.LOG_LEVEL=warning"),
        ("--env", "staging", "--no-validate", "--set", "components.worker.replicas=3"),
        ("--env", "prod", "--set", "components.frontend.replicas=many"),
        (
            "--env",
            "qa",
        ),
    ],
)
def test_a_served_render_prints_what_a_render_of_its_own_prints(
    project: Path, environ: dict[str, str], server: Path, args: tuple[str, ...]
) -> None:
    served = _render(project, environ, *args)
    alone = _render(
        project, {**environ, "AUTODEVHUB_NO_SERVER": "1", "AUTODEVHUB_NO_CACHE": "1"}, *args
    )
    assert served[1] == "none", "the caller handed the render over: it imported nothing heavy"
    assert (served[0], served[2], served[3]) == (alone[0], alone[2], alone[3])
    assert alone[1] != "none"


def test_each_request_renders_the_files_as_they_are_now(
    project: Path, environ: dict[str, str], server: Path
) -> None:
    first = _render(project, environ, "--env", "prod", "--set", "labels.try=one")
    base = project / "environments" / "prod.yaml"
    base.write_text(base.read_text().replace("replicas: 3", "replicas: 4"))
    second = _render(project, environ, "--env", "prod", "--set", "labels.try=two")
    assert first[1] == second[1] == "none"
    assert "replicas: 3" in first[2] and "replicas: 4" in second[2]


def test_without_a_server_the_render_runs_here_and_starts_one(
    project: Path, environ: dict[str, str]
) -> None:
    code, heavy, out, _ = _render(project, environ, "--env", "prod")
    assert code == 0 and heavy != "none" and "kind: Rollout" in out
    path = Path(
        _call("from autodevhub_cli import render_server as s; print(s.socket_path())", environ)
    )
    deadline = time.monotonic() + 60
    while not path.exists():
        assert time.monotonic() < deadline, "the first render did not start a server"
        time.sleep(0.1)
    _call("from autodevhub_cli import render_server as s; s.stop_servers()", environ)


def test_ci_and_the_switch_keep_every_render_in_its_own_process(
    project: Path, environ: dict[str, str], server: Path
) -> None:
    for n, extra in enumerate(({"CI": "true"}, {"AUTODEVHUB_NO_SERVER": "1"})):
        # A value no earlier render had: the render cache cannot answer.
        code, heavy, _, _ = _render(
            project, {**environ, **extra}, "--env", "prod", "--set", f"labels.x=y{n}"
        )
        assert code == 0 and heavy != "none"


def test_a_deep_runtime_folder_gets_a_short_socket_path(environ: dict[str, str]) -> None:
    deep = {**environ, "XDG_RUNTIME_DIR": "/tmp/" + "d" * 120}
    path = _call("from autodevhub_cli import render_server as s; print(s.socket_path())", deep)
    assert len(path) <= 100 and path.startswith("/tmp/autodevhub-render-")


def test_a_socket_folder_others_may_write_is_never_used(
    project: Path, environ: dict[str, str], server: Path
) -> None:
    server.parent.chmod(0o777)
    try:
        code, heavy, _, _ = _render(project, environ, "--env", "prod", "--set", "labels.a=b")
    finally:
        server.parent.chmod(0o700)
    assert code == 0 and heavy != "none", "rendered here, not through a socket others control"
