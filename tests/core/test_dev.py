"""core/dev.py without an engine: which edits sync, rebuild or do nothing (this project's
`develop` declarations), what is watched, the watcher itself, and the refusals. The loop on the
real engine is tests/deploy/test_dev.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from autodevhub_cli.core.config import load_environment
from autodevhub_cli.core.dev import (
    changed,
    plan_for,
    require_compose,
    snapshot,
    sync_targets_exist,
    watch,
    watched_roots,
)
from autodevhub_cli.core.errors import ConfigError
from autodevhub_cli.core.project import find_project
from tests.helpers import REPO, run_cli

DEV = load_environment(find_project(REPO), "dev", environ={})


@pytest.mark.parametrize(
    ("files", "rebuild", "reload", "unused"),
    [
        (["service/routes/ops.py"], [], ["backend", "worker"], []),
        (["service/requirements.lock"], ["backend", "worker"], [], []),
        (["service/Dockerfile", "service/main.py"], ["backend", "worker"], [], []),
        (["service/web/src/index.html"], ["frontend"], [], []),
        (["service/web/src/app.js", "service/db.py"], ["frontend"], ["backend", "worker"], []),
        (
            ["service/__pycache__/db.cpython-311.pyc"],
            [],
            [],
            ["service/__pycache__/db.cpython-311.pyc"],
        ),
        (["README.md"], [], [], ["README.md"]),
    ],
)
def test_this_projects_edits_sync_rebuild_or_do_nothing(
    files: list[str], rebuild: list[str], reload: list[str], unused: list[str]
) -> None:
    plan = plan_for(DEV, files)
    assert (plan.rebuild, plan.reload, plan.unused) == (rebuild, reload, unused)


def test_the_build_context_outside_the_synced_paths_rebuilds_without_a_develop_entry() -> None:
    bare = load_environment(
        find_project(REPO), "dev", sets=["components.frontend.develop.rebuild=[]"], environ={}
    )
    assert plan_for(bare, ["service/web/src/index.html"]).rebuild == ["frontend"]
    assert plan_for(bare, ["service/web/Dockerfile"]).rebuild == ["frontend"]


def test_the_watched_folders_are_those_the_components_name() -> None:
    assert watched_roots(DEV) == ["service"]


def test_the_watcher_reports_a_burst_of_changes_once(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("a = 1\n")
    (tmp_path / "src" / "node_modules").mkdir()
    stop = threading.Event()
    seen: list[list[str]] = []

    def run() -> None:
        for files in watch(tmp_path, ["src"], stop.is_set):
            seen.append(files)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(0.4)
    (tmp_path / "src" / "a.py").write_text("a = 2\n")
    (tmp_path / "src" / "b.py").write_text("b = 1\n")
    (tmp_path / "src" / "node_modules" / "x.js").write_text("skipped\n")
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=2)
    assert seen == [["src/a.py", "src/b.py"]]


def test_changed_lists_added_removed_and_modified_files() -> None:
    before = {"a": (1, 1), "b": (1, 1), "c": (1, 1)}
    after = {"a": (1, 1), "b": (2, 1), "d": (1, 1)}
    assert changed(before, after) == ["b", "c", "d"]
    assert snapshot(Path("/nonexistent-folder"), ["x"]) == {}


def test_dev_refuses_a_kubernetes_environment_and_a_missing_synced_path(tmp_path: Path) -> None:
    prod = load_environment(find_project(REPO), "prod", environ={})
    with pytest.raises(ConfigError) as caught:
        require_compose(prod)
    assert "runs Compose environments; 'prod' is a kubernetes environment" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        sync_targets_exist(tmp_path, DEV)
    assert "components.backend.develop.sync[0].path: 'service' does not exist" in str(caught.value)
    code, _, err = run_cli("dev", "--env", "prod", "--project-dir", str(REPO))
    assert code == 2 and "runs Compose environments" in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("{restart: true, exec: [reload]}", "set restart or exec, not both"),
        ("{sync: [{path: ../outside, target: /app}]}", "not a valid path inside the project"),
        ("{sync: [{path: /etc, target: /app}]}", "not a valid path inside the project"),
        ("{sync: [{path: service, target: app}]}", "should match pattern '^/'"),
        ("{exec: []}", "at least 1 item"),
        ("{rebuld: [x]}", "rebuld"),
    ],
)
def test_bad_develop_values_are_named(value: str, words: str) -> None:
    code, _, err = run_cli(
        "render",
        "--env",
        "dev",
        "--project-dir",
        str(REPO),
        "--set",
        f"components.backend.develop={value}",
    )
    assert code == 2 and "components.backend.develop" in err and words in err, err
