"""Small JSON records under the project's `.autodevhub/`, written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from autodevhub_cli.core.errors import RecordError


def write_json(path: Path, data: object) -> None:
    """Write `data` to `path` so a reader sees the old file or the new one, never a torn one."""
    write_text_atomically(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file, fsync and rename; raise RecordError
    (the old file untouched, no temporary file left) when the filesystem refuses."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise record_error(path, exc) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise record_error(path, exc) from exc
        raise


def record_error(path: Path, exc: OSError) -> RecordError:
    """The RecordError for a failed write of `path`, naming the filesystem that holds it."""
    mount = _mount_point(path)
    free = None
    if mount is not None:
        try:
            stats = os.statvfs(mount)
            free = stats.f_bavail * stats.f_frsize
        except OSError:
            pass
    return RecordError(
        path, exc.strerror or str(exc), errno=exc.errno, filesystem=mount, free_bytes=free
    )


def _mount_point(path: Path) -> Path | None:
    """The mount point of the filesystem that holds `path` (or would, once it is made)."""
    here = Path(os.path.abspath(path))
    while not here.exists() and here != here.parent:
        here = here.parent
    while not os.path.ismount(here):
        if here == here.parent:
            return None
        here = here.parent
    return here


def read_json(path: Path) -> object:
    """The JSON in `path`, or None when there is no such file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
