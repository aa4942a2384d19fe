"""`render --out DIR` replaces a folder of rendered files and nothing else, all at once.

Each refusal: exit 2, the words the user must see, and every file of the folder unchanged.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from autodevhub_cli.core.render_out import MARKER, _exchange
from tests.helpers import copy_project, run_cli


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative path -> sha256), to show nothing changed."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def render(project: Path, out: Path, *more: str) -> tuple[int, str, str]:
    return run_cli(
        "render", "--env", "prod", "--out", str(out), "--project-dir", str(project), *more
    )


def hand_written(out: Path) -> None:
    out.mkdir(parents=True)
    (out / "deployment.yaml").write_text("kind: Deployment # mine\n")
    (out / "service.yaml").write_text("kind: Service # mine\n")


def marked_then_extra(out: Path) -> None:
    hand_written(out)
    (out / MARKER).write_text("deployment.yaml\n")  # service.yaml is not in the list


REFUSED: list[tuple[str, Callable[[Path], Path], list[str]]] = [
    ("environments", lambda p: p / "environments", ["project's environments/ folder"]),
    ("templates", lambda p: p / "templates", ["project's templates/ folder"]),
    ("in-templates", lambda p: p / "templates" / "kubernetes", ["templates/ folder"]),
    ("project-root", lambda p: p, ["holds the project"]),
    ("parent-of-project", lambda p: p.parent, ["holds the project"]),
]


@pytest.mark.parametrize(("case", "where", "words"), REFUSED, ids=[c[0] for c in REFUSED])
def test_the_projects_own_folders_are_never_replaced(
    project: Path, case: str, where: Callable[[Path], Path], words: list[str]
) -> None:
    out = where(project)
    before = snapshot(project)
    code, _, err = render(project, out)
    assert code == 2, err
    for word in [*words, "build/manifests"]:
        assert word in " ".join(err.split()), err
    assert "Traceback" not in err
    assert snapshot(project) == before


FOREIGN: list[tuple[str, Callable[[Path], None], list[str]]] = [
    ("hand-written-yaml", hand_written, ["deployment.yaml, service.yaml", "not written by"]),
    ("marker-lists-less", marked_then_extra, ["service.yaml", "not written by the render"]),
    (
        "other-files",
        lambda out: (out.mkdir(), (out / "notes.txt").write_text("mine")),
        ["notes.txt", "refuses"],
    ),
    (
        "a-file",
        lambda out: out.write_text("not a folder"),
        ["exists and is not a folder"],
    ),
]


@pytest.mark.parametrize(("case", "make", "words"), FOREIGN, ids=[c[0] for c in FOREIGN])
def test_a_folder_autodevhub_did_not_write_is_refused_untouched(
    project: Path, tmp_path: Path, case: str, make: Callable[[Path], None], words: list[str]
) -> None:
    out = tmp_path / "k8s"
    make(out)
    before = snapshot(tmp_path / "k8s") if out.is_dir() else out.read_bytes()
    code, _, err = render(project, out)
    assert code == 2, err
    for word in words:
        assert word in " ".join(err.split()), err
    after = snapshot(out) if out.is_dir() else out.read_bytes()
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["k8s", "project"])


def test_its_own_folder_is_replaced_with_a_marker_kubectl_skips(
    project: Path, tmp_path: Path
) -> None:
    out = tmp_path / "manifests"
    code, _, err = render(project, out)
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert MARKER in names and all(n.endswith(".yaml") for n in names if n != MARKER)
    listed = (out / MARKER).read_text().splitlines()
    assert sorted(n for n in listed if not n.startswith("#")) == sorted(
        n for n in names if n != MARKER
    )
    first = snapshot(out)
    code, _, err = render(project, out, "--set", "components.frontend.replicas=5")
    assert code == 0, err
    assert snapshot(out) != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifests", "project"], "no leftovers"


def _dead_pid() -> int:
    done = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_run_killed_between_its_renames_is_repaired_by_the_next(
    project: Path, tmp_path: Path
) -> None:
    """Where the kernel cannot swap two folders in one step, the old folder is moved aside,
    then the new one in: a run killed between the two leaves DIR missing and the old files
    aside. The next run puts them back first (and then replaces them as usual); leftovers of
    dead runs go."""
    out = tmp_path / "manifests"
    code, _, err = render(project, out)
    assert code == 0, err
    kept = snapshot(out)
    pid = _dead_pid()
    aside = tmp_path / f".manifests.autodevhub-old.{pid}.x1"
    aside.mkdir()
    os.rename(out, aside / "files")
    half = tmp_path / f".manifests.autodevhub-new.{pid}.x2"
    half.mkdir()
    (half / "a.yaml").write_text("half written")
    # The next run fails on a value: nothing new is written, but the old files are back.
    code, _, err = render(project, out, "--set", "components.frontend.replicas=-1")
    assert code == 2, err
    assert snapshot(out) == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifests", "project"]


def test_the_swap_is_one_step_on_this_kernel(tmp_path: Path) -> None:
    """renameat2(RENAME_EXCHANGE): no moment where either name is missing."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    if not _exchange(a, b):
        pytest.skip("this kernel or filesystem cannot exchange two paths in one step")
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"


UNWRITABLE = [
    ("proc", Path("/proc/autodevhub-out")),
    ("sys", Path("/sys/autodevhub-out")),
    ("under-a-file", None),
]


@pytest.mark.parametrize(("case", "where"), UNWRITABLE, ids=[c[0] for c in UNWRITABLE])
def test_a_folder_that_cannot_be_written_is_a_clear_error(
    project: Path, tmp_path: Path, case: str, where: Path | None
) -> None:
    if where is None:
        (tmp_path / "file").write_text("x")
        where = tmp_path / "file" / "out"
    code, out, err = render(project, where)
    assert code == 2, (out, err)
    message = " ".join(err.split())
    assert f"Could not write --out {where}" in message or "is not a folder" in message, message
    assert "Unexpected error" not in err and "Traceback" not in err


def test_a_read_only_folder_is_a_clear_error(project: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root writes anywhere a permission bit says no; a read-only mount says no to root too.
        ro = tmp_path / "ro"
        ro.mkdir()
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], capture_output=True
        )
        if mounted.returncode != 0:
            pytest.skip("cannot mount a read-only tmpfs here")
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
    try:
        code, _, err = render(project, ro / "out")
        message = " ".join(err.split())
        assert code == 2, err
        assert f"Could not write --out {ro / 'out'}" in message, message
        assert "Read-only file system" in message or "Permission denied" in message, message
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(ro)], check=False)
