"""A content-addressed cache of `render` output, so an unchanged render costs no template engine.

The key covers every input of a render: the request (environment, target, overrides, images
file, validation settings), the `AUTODEVHUB__*` variables, the bytes of every file under
`environments/` and `templates/`, autodevhub's own code and schemas, and the installed versions of
the libraries and tools that shape or check the output (Jinja2, PyYAML, pydantic,
kubernetes-validate, the Compose binary). Any change to any of them is a miss. Only output that
passed validation is stored. This module imports nothing beyond the standard library: a hit must
not pay for pydantic, Jinja or PyYAML. `AUTODEVHUB_NO_CACHE=1` turns it off.

The cache is bounded: past `MAX_BYTES` the least recently used entries (a hit refreshes an
entry's time) are deleted when the next one is stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from stat import S_ISREG

_FORMAT = b"autodevhub-render-cache-3"
_PACKAGE = Path(__file__).resolve().parent.parent
MAX_BYTES = 64 * 1024 * 1024
_SIZE_FILE = "size"
_LIBRARIES = ("jinja2", "yaml", "pydantic", "pydantic_core", "kubernetes_validate", "jsonschema")


def enabled() -> bool:
    """False when AUTODEVHUB_NO_CACHE=1 (every cache autodevhub keeps asks this)."""
    return os.environ.get("AUTODEVHUB_NO_CACHE") != "1"


def cache_home() -> Path:
    """The folder all of autodevhub's per-user caches live under ($XDG_CACHE_HOME/autodevhub)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "autodevhub"


def _folder() -> Path:
    return cache_home() / "render"


def _tree(digest: hashlib._Hash, root: Path, contents: bool) -> None:
    """Every file under `root`: its name and its bytes (or size and time). Only regular files
    are opened (a FIFO would block); a link, a dangling link or an unreadable file enters the
    key as what it is, and the render that follows reports it."""
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names + [d for d in dirs if os.path.islink(os.path.join(folder, d))]):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode() + b"\0")
            try:
                if os.path.islink(path):
                    digest.update(b"link\0" + os.fsencode(os.readlink(path)) + b"\0")
                stat = os.stat(path)
                if not S_ISREG(stat.st_mode):
                    digest.update(f"mode:{stat.st_mode}".encode())
                elif contents:
                    with open(path, "rb") as handle:
                        digest.update(hashlib.sha256(handle.read()).digest())
                else:
                    digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
            except OSError as exc:
                digest.update(f"error:{exc.errno}".encode())


def code_identity(digest: hashlib._Hash, libraries: Sequence[str]) -> None:
    """Feed `digest` what identifies the code that runs: autodevhub's own files (sizes and
    times) and each library's installed module."""
    _tree(digest, _PACKAGE, contents=False)
    for name in libraries:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec else None
        if origin and os.path.exists(origin):
            stat = os.stat(origin)
            digest.update(f"{name}:{origin}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        else:
            digest.update(f"{name}:missing".encode())


def _compose(digest: hashlib._Hash) -> None:
    from autodevhub_cli.core.adapters.compose import compose_binary
    from autodevhub_cli.core.errors import ToolError

    try:
        compose = compose_binary()
    except ToolError:
        compose = ""
    if compose and os.path.exists(compose):
        stat = os.stat(compose)
        digest.update(f"compose:{stat.st_size}:{stat.st_mtime_ns}".encode())


def key(
    project_root: Path,
    request: Iterable[tuple[str, object]],
    sets: Sequence[str],
    images: Path | None,
    environ: Mapping[str, str],
) -> str:
    """The cache key of one render."""
    digest = hashlib.sha256(_FORMAT)
    for name, value in request:
        digest.update(f"{name}={value!r}\0".encode())
    for expression in sets:
        digest.update(f"set\0{expression}\0".encode())
    for name in sorted(environ):
        if name.startswith("AUTODEVHUB__"):
            digest.update(f"env\0{name}\0{environ[name]}\0".encode())
    # Paths a render expands with `~` (the Compose secret files) depend on whose home it is.
    digest.update(f"home\0{os.path.expanduser('~')}\0".encode())
    if images is not None:
        digest.update(b"images\0" + Path(images).read_bytes())
    for folder in ("environments", "templates"):
        digest.update(folder.encode() + b"\0")
        _tree(digest, project_root / folder, contents=True)
    code_identity(digest, _LIBRARIES)
    _compose(digest)
    return digest.hexdigest()


def request_key(
    project_root: Path,
    environment: str,
    target: str | None,
    kube_version: str | None,
    sets: Sequence[str],
    images: Path | None,
    environ: Mapping[str, str],
) -> str:
    """The key of a validated `render` to stdout (shared by the CLI's fast path and the core)."""
    fields = (("environment", environment), ("target", target), ("kube_version", kube_version))
    return key(project_root, fields, sets, images, environ)


def load(cache_key: str) -> str | None:
    """The cached output for `cache_key`, or None. A hit marks the entry as just used."""
    path = _folder() / cache_key[:2] / cache_key[2:]
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    with contextlib.suppress(OSError):
        os.utime(path)
    return text


def store(cache_key: str, output: str, limit: int = MAX_BYTES) -> None:
    """Remember validated output, then keep the cache under `limit` bytes; a read-only cache
    folder only costs speed.

    The cache's size is kept in a file beside the entries (as ccache keeps its counters), so a
    store reads one number instead of listing every entry; only when that number passes the
    limit (or is not known yet) are the entries listed, the oldest deleted and the number set
    exact again. Concurrent renders may lose an addition: the next listing corrects it."""
    data = output.encode("utf-8")
    if len(data) > limit:
        return
    path = _folder() / cache_key[:2] / cache_key[2:]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        if _grown_by(len(data)) > limit:
            _evict(limit)
    except OSError:
        pass


def _grown_by(added: int) -> int:
    """The recorded size plus `added`, recorded; unknown (no record yet) is over any limit."""
    try:
        size = int((_folder() / _SIZE_FILE).read_text(encoding="ascii")) + added
    except (OSError, ValueError):
        return sys.maxsize
    _record_size(size)
    return size


def _record_size(size: int) -> None:
    path = _folder() / _SIZE_FILE
    tmp = path.with_name(f".{_SIZE_FILE}.{os.getpid()}")
    tmp.write_text(str(size), encoding="ascii")
    os.replace(tmp, path)


def _evict(limit: int) -> None:
    """Delete the least recently used entries until the cache holds at most `limit` bytes, and
    record the size left."""
    entries = []
    total = 0
    for shard in os.scandir(_folder()):
        if not shard.is_dir(follow_symlinks=False):
            continue
        for entry in os.scandir(shard.path):
            stat = entry.stat(follow_symlinks=False)
            entries.append((stat.st_mtime_ns, stat.st_size, entry.path))
            total += stat.st_size
    for _, size, path in sorted(entries):
        if total <= limit:
            break
        with contextlib.suppress(OSError):
            os.unlink(path)
            total -= size
    _record_size(total)
