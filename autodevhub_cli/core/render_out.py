"""`render --out DIR`: replace a folder of rendered files, and nothing else, all at once.

A folder is replaced only when it is empty or autodevhub wrote it: it then holds a marker file
(`.autodevhub-render`, no extension, so `kubectl apply -f DIR` skips it) naming every file
written, and nothing else. A folder of hand-written manifests, the project's own folders and
anything with a file the marker does not list are refused, whatever their files are called.

The new files are written into a sibling folder, then swapped with the old one in one step
(`renameat2(RENAME_EXCHANGE)` on Linux), so DIR is always either the old files or the new ones.
Where the kernel cannot swap, two renames are used, and a run killed between them is repaired
by the next one: it puts the old folder back before anything else. Leftovers of killed runs
(their process gone) are removed by the next run.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from autodevhub_cli.core.errors import RenderError
from autodevhub_cli.core.lock import pid_alive
from autodevhub_cli.core.project import Project

MARKER = ".autodevhub-render"
_HEADER = "# written by `autodevhub render --out`; these files are replaced by the next one\n"


def write_rendered(out_dir: Path, files: Mapping[str, str], project: Project | None = None) -> None:
    """Replace `out_dir` with exactly `files` (and the marker), or leave it untouched."""
    out_dir = Path(os.path.abspath(out_dir))
    try:
        _check_target(out_dir, project)
        _repair(out_dir)
        _check_owned(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=_prefix(out_dir, "new"), dir=out_dir.parent))
    except OSError as exc:
        raise _os_error(out_dir, exc) from exc
    try:
        for name, content in files.items():
            (staging / name).write_text(content, encoding="utf-8")
        (staging / MARKER).write_text(_HEADER + "".join(f"{n}\n" for n in files), "utf-8")
        if not out_dir.exists():
            os.rename(staging, out_dir)
        elif _exchange(staging, out_dir):
            shutil.rmtree(staging, ignore_errors=True)  # the old files, now under that name
        else:
            old = Path(tempfile.mkdtemp(prefix=_prefix(out_dir, "old"), dir=out_dir.parent))
            os.rename(out_dir, old / "files")
            os.rename(staging, out_dir)
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise _os_error(out_dir, exc) from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _prefix(out_dir: Path, kind: str) -> str:
    return f".{out_dir.name}.autodevhub-{kind}.{os.getpid()}."


def _check_target(out_dir: Path, project: Project | None) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise RenderError(
            f"--out {out_dir} exists and is not a folder.",
            hint="Name a new or empty folder, such as build/manifests.",
        )
    if project is None:
        return
    root = Path(os.path.abspath(project.root))
    if root.is_relative_to(out_dir):
        raise RenderError(
            f"--out {out_dir} holds the project ({root}); render replaces the whole --out "
            "folder, so it never writes there.",
            hint="Name a folder of its own, such as build/manifests.",
        )
    for own in ("environments", "templates"):
        if out_dir.is_relative_to(root / own):
            raise RenderError(
                f"--out {out_dir} is in the project's {own}/ folder; render replaces the whole "
                "--out folder, so it never writes there.",
                hint="Name a folder of its own, such as build/manifests.",
            )


def _check_owned(out_dir: Path) -> None:
    if not out_dir.is_dir():
        return
    present = {p.name for p in out_dir.iterdir()}
    if not present:
        return
    marker = out_dir / MARKER
    listed = set()
    if marker.is_file():
        listed = {
            line.strip()
            for line in marker.read_text("utf-8", errors="replace").splitlines()
            if line.strip() and not line.startswith("#")
        } | {MARKER}
    foreign = sorted(present - listed)
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        why = (
            "it was not written by `autodevhub render --out`"
            if not listed
            else "they were not written by the render that made it"
        )
        raise RenderError(
            f"--out {out_dir} holds files autodevhub did not write ({shown}): {why}. Render "
            "replaces the whole folder, so it refuses to touch this one.",
            hint="Name a new or empty folder, such as build/manifests (a folder an earlier "
            "version wrote has no marker: delete it once and render again).",
        )


def repair(out_dir: Path) -> None:
    """Put back the folder a killed run had moved aside; drop leftovers of dead runs. Called
    first, so that even a render that then fails leaves DIR as it was before the killed run."""
    out_dir = Path(os.path.abspath(out_dir))
    try:
        _repair(out_dir)
    except OSError as exc:
        raise _os_error(out_dir, exc) from exc


def _repair(out_dir: Path) -> None:
    parent = out_dir.parent
    if not parent.is_dir():
        return
    for kind in ("old", "new"):
        for leftover in parent.glob(f".{out_dir.name}.autodevhub-{kind}.*"):
            pid = leftover.name.split(".autodevhub-", 1)[1].split(".")[1]
            if pid.isdigit() and pid_alive(int(pid)):
                continue
            saved = leftover / "files"
            if kind == "old" and saved.is_dir() and not out_dir.exists():
                os.rename(saved, out_dir)
            shutil.rmtree(leftover, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step; False where this system cannot (then the caller renames)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    done = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if done == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _os_error(out_dir: Path, exc: OSError) -> RenderError:
    where = exc.filename or out_dir
    return RenderError(
        f"Could not write --out {out_dir}: {exc.strerror or exc} ({where}). Nothing was "
        "changed there.",
        hint="Name a folder you can write to, such as build/manifests.",
    )
