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


def _render(
    project: Path,
    cache: Path,
    *args: str,
    env: dict[str, str] | None = None,
    probe: str = PROBE,
) -> dict:
    environ = {**os.environ, "XDG_CACHE_HOME": str(cache), **(env or {})}
    environ.pop("AUTODEVHUB_NO_CACHE", None)
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(project), *args],
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


def _key_inputs(tmp_path: Path) -> dict:
    """A project, an images file, a package folder, a library and a Compose binary of the
    test's own, so that each can be changed."""
    project = tmp_path / "keyed"
    for name, text in {
        "environments/prod.yaml": "target: kubernetes\n",
        "environments/_base.yaml": "namespace: x\n",
        "templates/kubernetes/app.yaml.j2": "kind: ConfigMap\n",
    }.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    (tmp_path / "images.json").write_text('{"images": []}')
    (tmp_path / "package").mkdir()
    (tmp_path / "package" / "render.py").write_text("# code\n")
    (tmp_path / "libs").mkdir()
    (tmp_path / "libs" / "keyedlib.py").write_text("VERSION = 1\n")
    (tmp_path / "compose").write_text("#!/bin/sh\n")
    return {
        "project_root": project,
        "environment": "prod",
        "target": None,
        "kube_version": None,
        "sets": ["components.web.replicas=2"],
        "images": tmp_path / "images.json",
        "environ": {"AUTODEVHUB__NAMESPACE": "a", "HOME": str(tmp_path / "home-a")},
    }


def test_every_input_of_a_render_changes_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key covers what the output depends on: the request, the overrides, the
    AUTODEVHUB__ variables, whose home it is, the images file, every file under environments/
    and templates/, autodevhub's code, the libraries and the Compose binary; and nothing else
    (another variable keeps the entry)."""
    from autodevhub_cli.core import render_cache
    from autodevhub_cli.core.adapters import compose

    inputs = _key_inputs(tmp_path)
    monkeypatch.setattr(render_cache, "_PACKAGE", tmp_path / "package")
    monkeypatch.syspath_prepend(str(tmp_path / "libs"))
    monkeypatch.setattr(render_cache, "_LIBRARIES", ("keyedlib",))
    monkeypatch.setattr(compose, "compose_binary", lambda: str(tmp_path / "compose"))

    def key(**changed: object) -> str:
        arguments = {**inputs, **changed}
        environ = arguments.pop("environ")
        monkeypatch.setenv("HOME", environ["HOME"])
        return render_cache.request_key(environ=environ, **arguments)  # type: ignore[arg-type]

    base = key()
    assert key() == base, "the same inputs give the same key"
    assert key(environ={**inputs["environ"], "PATH": "/elsewhere", "TERM": "dumb"}) == base

    def edit(path: Path, text: str) -> None:
        before = path.stat().st_mtime_ns if path.exists() else 0
        path.write_text(text)
        os.utime(path, ns=(before + 10**9, before + 10**9))

    project = inputs["project_root"]
    changes = {
        "environment": lambda: key(environment="staging"),
        "target": lambda: key(target="compose"),
        "kube_version": lambda: key(kube_version="1.32"),
        "a --set": lambda: key(sets=["components.web.replicas=3"]),
        "another --set": lambda: key(sets=[*inputs["sets"], "namespace=b"]),
        "an AUTODEVHUB__ variable": lambda: key(
            environ={**inputs["environ"], "AUTODEVHUB__NAMESPACE": "b"}
        ),
        "HOME": lambda: key(environ={**inputs["environ"], "HOME": str(tmp_path / "home-b")}),
    }
    edits = {
        "the images file": lambda: edit(inputs["images"], '{"images": [1]}'),
        "an environment file": lambda: edit(
            project / "environments" / "prod.yaml", "target: compose\n"
        ),
        "a shared base": lambda: edit(project / "environments" / "_base.yaml", "namespace: y\n"),
        "a new environment file": lambda: edit(
            project / "environments" / "values.schema.json", "{}"
        ),
        "a template": lambda: edit(
            project / "templates" / "kubernetes" / "app.yaml.j2", "kind: Secret\n"
        ),
        "a template renamed": lambda: (project / "templates" / "kubernetes" / "app.yaml.j2").rename(
            project / "templates" / "kubernetes" / "main.yaml.j2"
        ),
        "autodevhub's code": lambda: edit(tmp_path / "package" / "render.py", "# changed\n"),
        "a library": lambda: edit(tmp_path / "libs" / "keyedlib.py", "VERSION = 2\n"),
        "the Compose binary": lambda: edit(tmp_path / "compose", "#!/bin/sh\nexit 0\n"),
    }
    seen = {base}
    for what, changed_key in changes.items():
        value = changed_key()
        assert value not in seen, f"{what} does not change the key"
        seen.add(value)
    for what, change in edits.items():
        change()
        value = key()
        assert value not in seen, f"{what} does not change the key"
        seen.add(value)


def test_the_cache_is_evicted_by_size_least_recently_used_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autodevhub_cli.core import render_cache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("AUTODEVHUB_NO_CACHE", raising=False)
    keys = [f"{n:02x}" + "0" * 62 for n in range(6)]
    folder = tmp_path / "cache" / "autodevhub" / "render"

    def used_at(key: str, second: int) -> None:
        os.utime(folder / key[:2] / key[2:], ns=(second * 10**9, second * 10**9))

    for n, key in enumerate(keys[:3]):
        render_cache.store(key, "x" * 1000, limit=3500)
        used_at(key, n + 1)
    render_cache.store(keys[3], "x" * 1000, limit=3500)
    # Over 3,500 bytes after the fourth: the least recently used went.
    assert [render_cache.load(k) is not None for k in keys[:4]] == [False, True, True, True]
    used_at(keys[1], 1)
    used_at(keys[2], 2)
    used_at(keys[3], 3)
    # A hit counts as a use: keys[1], read now, is kept and keys[2] is the oldest.
    assert render_cache.load(keys[1]) is not None
    render_cache.store(keys[4], "y" * 1000, limit=3500)
    assert render_cache.load(keys[2]) is None
    assert all(render_cache.load(k) is not None for k in (keys[1], keys[3], keys[4]))
    # An entry larger than the whole cache is not kept, and evicts nothing.
    render_cache.store(keys[5], "z" * 4000, limit=3500)
    assert render_cache.load(keys[5]) is None
    assert all(render_cache.load(k) is not None for k in (keys[1], keys[3], keys[4]))


def test_unchanged_values_are_not_checked_against_their_schema_again(
    project: Path, tmp_path: Path
) -> None:
    """A render whose `values` passed against the same values.schema.json before does not load
    jsonschema (the verdict cache); values that break the schema are still refused after."""
    probe = PROBE.replace('"models":', '"jsonschema": "jsonschema" in sys.modules, "models":')
    cache = tmp_path / "cache"

    def render(*args: str) -> dict:
        return _render(project, cache, *args, probe=probe)

    first = render("--set", "components.frontend.replicas=4")
    assert first["code"] in (0, None) and first["jsonschema"]
    second = render("--set", "components.frontend.replicas=5")
    assert second["code"] in (0, None) and not second["jsonschema"]
    broken = render("--set", "values.slo.availability=2")
    assert broken["code"] == 2 and broken["jsonschema"]
