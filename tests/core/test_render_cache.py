"""The render cache: a hit gives the same bytes without Jinja; any input change is a miss."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import copy_project

PROBE = """
import io, json, sys, contextlib
from autodevhub_cli.main import app
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    try:
        app(["render", "--env", "prod", *sys.argv[2:], "--project-dir", sys.argv[1]])
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "out": buf.getvalue(),
                  "jinja": "jinja2" in sys.modules, "models": "autodevhub_cli.core.environment" in sys.modules}))
"""


def _render(project: Path, cache: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    environ = {**os.environ, "XDG_CACHE_HOME": str(cache), **(env or {})}
    environ.pop("AUTODEVHUB_NO_CACHE", None)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(project), *args],
        capture_output=True,
        text=True,
        env=environ,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


def test_hit_is_identical_and_loads_no_template_engine(project: Path, tmp_path: Path) -> None:
    first = _render(project, tmp_path / "cache")
    assert first["code"] in (0, None) and first["jinja"], "a miss renders with Jinja"
    second = _render(project, tmp_path / "cache")
    assert second["out"] == first["out"]
    assert not second["jinja"] and not second["models"], "a hit needs neither Jinja nor models"


@pytest.mark.parametrize(
    "change",
    ["template", "environment", "env-var", "set"],
)
def test_any_input_change_is_a_miss(project: Path, tmp_path: Path, change: str) -> None:
    cache = tmp_path / "cache"
    base = _render(project, cache)
    args: list[str] = []
    env: dict[str, str] = {}
    if change == "template":
        path = project / "templates" / "kubernetes" / "app.yaml.j2"
        text = path.read_text().replace(
            'k.services("frontend")', 'k.services("frontend") | replace("ClusterIP", "NodePort")'
        )
        path.write_text(text)
    elif change == "environment":
        path = project / "environments" / "prod.yaml"
        path.write_text(path.read_text().replace("replicas: 3", "replicas: 4"))
    elif change == "env-var":
        env = {"AUTODEVHUB__COMPONENTS__FRONTEND__REPLICAS": "5"}
    else:
        args = ["--set", "components.frontend.replicas=6"]
    changed = _render(project, cache, *args, env=env)
    assert changed["jinja"], "a changed input must be rendered again"
    assert changed["out"] != base["out"]


def test_invalid_output_is_never_cached(project: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    bad = _render(project, cache, "--set", "components.frontend.port=0")
    assert bad["code"] == 2
    assert not list((cache / "autodevhub" / "render").rglob("*")) or all(
        p.is_dir() for p in (cache / "autodevhub" / "render").rglob("*")
    )


ENTRY = """
import sys
from autodevhub_cli.entry import main
sys.argv = ["autodevhub", "render", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    print(f"exit={exc.code}", file=sys.stderr)
print(f"typer={'typer' in sys.modules}", file=sys.stderr)
print(f"jinja={'jinja2' in sys.modules}", file=sys.stderr)
"""


def _entry(args: list[str], cache: Path) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    environ.pop("AUTODEVHUB_NO_CACHE", None)
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *args], capture_output=True, text=True, env=environ
    )


def test_console_script_renders_without_typer_and_answers_hits_from_the_cache(
    project: Path, tmp_path: Path
) -> None:
    args = ["--env", "prod", "-C", str(project), "--set", "components.frontend.replicas=5"]
    miss = _entry(args, tmp_path / "cache")
    assert "typer=False" in miss.stderr and "jinja=True" in miss.stderr
    # The same bytes as the Typer command prints.
    typer_out = _render(
        project, tmp_path / "other-cache", "--set", "components.frontend.replicas=5"
    )
    assert miss.stdout == typer_out["out"]
    hit = _entry(args, tmp_path / "cache")
    assert "typer=False" in hit.stderr and "jinja=False" in hit.stderr
    assert hit.stdout == miss.stdout
    equals_form = _entry(
        ["--env=prod", f"--project-dir={project}", "--set=components.frontend.replicas=5"],
        tmp_path / "cache",
    )
    assert "typer=False" in equals_form.stderr and equals_form.stdout == miss.stdout


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_console_script_render_matches_the_typer_command(
    project: Path, tmp_path: Path, env: str
) -> None:
    fast = _entry(["--env", env, "-C", str(project), "--no-validate"], tmp_path / "cache")
    assert "typer=False" in fast.stderr and "exit=" not in fast.stderr
    environ = {**os.environ, "AUTODEVHUB_NO_CACHE": "1"}
    typer_app = "import sys; from autodevhub_cli.main import app; app(sys.argv[1:])"
    proc = subprocess.run(
        [sys.executable, "-c", typer_app, "render", "--env", env, "-C", str(project)],
        capture_output=True,
        text=True,
        env=environ,
        check=True,
    )
    assert fast.stdout == proc.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--env", "nope"], "Unknown environment 'nope'"),
        (["--env", "prod", "--set", "replicas"], "--set"),
        (["--env", "prod", "--set", "components.frontend.replicas=many"], "replicas"),
        (["--env", "prod", "--kube-version", "0.1"], "0.1"),
    ],
)
def test_console_script_errors_read_as_every_command_errors(
    project: Path, tmp_path: Path, args: list[str], words: str
) -> None:
    result = _entry([*args, "-C", str(project)], tmp_path / "cache")
    assert "exit=2" in result.stderr, result.stderr
    assert "typer=True" in result.stderr  # reported through the one error path
    assert "Error:" in result.stderr and words in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not list((tmp_path / "cache").rglob("*")) or all(
        p.is_dir() for p in (tmp_path / "cache").rglob("*")
    )


@pytest.mark.parametrize(
    "extra",
    [["--help"], ["--out", "OUT"], ["--target"], ["--bogus", "1"]],
)
def test_anything_else_goes_to_typer(project: Path, tmp_path: Path, extra: list[str]) -> None:
    _entry(["--env", "prod", "-C", str(project)], tmp_path / "cache")  # fill the cache
    extra = [str(tmp_path / "out") if word == "OUT" else word for word in extra]
    result = _entry(["--env", "prod", "-C", str(project), *extra], tmp_path / "cache")
    assert "typer=True" in result.stderr


def test_debug_goes_to_typer(project: Path, tmp_path: Path) -> None:
    environ = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "AUTODEVHUB_DEBUG": "1"}
    result = subprocess.run(
        [sys.executable, "-c", ENTRY, "--env", "prod", "-C", str(project)],
        capture_output=True,
        text=True,
        env=environ,
    )
    assert "typer=True" in result.stderr and result.stdout


def test_whose_home_it_is_is_part_of_the_key(project: Path, tmp_path: Path) -> None:
    """The Compose secret files live under `~` (staging's, rendered for Compose): a render under
    another HOME is another render (it once printed the first user's paths)."""
    cache = tmp_path / "cache"
    homes = [tmp_path / "home-a", tmp_path / "home-b"]
    args = ["--env", "staging", "--target", "compose"]
    outs = []
    for home in homes:
        home.mkdir()
        outs.append(_render(project, cache, *args, env={"HOME": str(home)})["out"])
    assert str(homes[0]) in outs[0], "the render names secret files under HOME"
    assert str(homes[0]) not in outs[1] and str(homes[1]) in outs[1]


def test_no_cache_turns_off_every_cache_the_render_keeps(project: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    environ = {**os.environ, "XDG_CACHE_HOME": str(cache), "AUTODEVHUB_NO_CACHE": "1"}
    subprocess.run(
        [sys.executable, "-c", PROBE, str(project)], env=environ, check=True, capture_output=True
    )
    assert not cache.exists() or not any(cache.rglob("*")), sorted(cache.rglob("*"))
