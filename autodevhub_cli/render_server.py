"""A warm process for the edit loop's `render`: the imports done once, each render in a fork.

A fresh `autodevhub render` spends most of its time importing pydantic, Jinja and PyYAML and
building the value model's validator before it renders anything. Like the Gradle daemon or
`dmypy`, the first plain `render` on a terminal starts a server in the background (this render
still runs in its own process); later ones connect to it over a Unix socket and hand it their
working folder, environment variables, arguments and their own stdin, stdout and stderr (file
descriptors passed with SCM_RIGHTS). The server forks a child per request, which runs the same
console-script code path with those, writes straight to the caller's terminal or pipe, and
sends back the exit code. Nothing is cached between requests: every render loads, validates and
renders the project afresh, in a process of its own.

The socket's name is derived from the interpreter and the code it would run (autodevhub's own
files and its libraries), so an upgrade or an edit starts a new server; the old one ends after
`IDLE_SECONDS` without a request. Only the same user may connect (a 0700 folder, and the peer's
uid is checked). `AUTODEVHUB_NO_SERVER=1` turns it off; so does `CI` (no background processes
on CI machines, as Gradle recommends for its daemon).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import struct
import sys
from pathlib import Path

IDLE_SECONDS = 900
_LIBRARIES = (
    "pydantic",
    "pydantic_core",
    "jinja2",
    "yaml",
    "typer",
    "rich",
    "kubernetes_validate",
    "jsonschema",
)
_HEADER = struct.Struct("!I")
_MAX_SOCKET_PATH = 100


def enabled() -> bool:
    """Whether `render` may use (and start) the server."""
    return os.environ.get("AUTODEVHUB_NO_SERVER") != "1" and not os.environ.get("CI")


def _runtime_dir() -> Path:
    from autodevhub_cli.core.render_cache import cache_home

    base = os.environ.get("XDG_RUNTIME_DIR") or cache_home()
    return Path(base) / f"autodevhub-render-{os.getuid()}"


def _identity() -> str:
    """A hash of what a render would run: the interpreter, autodevhub's files, its libraries
    (the render cache's own fingerprint of the code)."""
    from autodevhub_cli.core.render_cache import code_identity

    digest = hashlib.sha256(f"{os.path.realpath(sys.executable)}\0{sys.version}\0".encode())
    code_identity(digest, _LIBRARIES)
    return digest.hexdigest()[:20]


def socket_path() -> Path:
    """Where the server for this interpreter and installation listens; the server itself checks,
    at each request, that the code it would run has not changed since it started."""
    where = f"{os.path.realpath(sys.executable)}\0{Path(__file__).resolve().parent}"
    folder = _runtime_dir()
    name = f"{hashlib.sha256(where.encode()).hexdigest()[:20]}.sock"
    if len(str(folder / name)) > _MAX_SOCKET_PATH:
        # A Unix socket's path has at most 107 bytes: a deep folder gets one under /tmp.
        import tempfile

        short = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
        folder = Path(tempfile.gettempdir()) / f"autodevhub-render-{os.getuid()}-{short}"
    return folder / name


def _private(folder: Path) -> bool:
    """The folder is this user's and nobody else's (so is any socket in it)."""
    try:
        stat = folder.stat()
    except OSError:
        return False
    return stat.st_uid == os.getuid() and not stat.st_mode & 0o077


STALE = -1  # the answer of a server whose code changed: render in-process, start a new one


# --- client ------------------------------------------------------------------------------


def run_remote(args: list[str]) -> int | None:
    """Run `autodevhub <args>` in the server; its exit code, or None when no server answers
    for this code and the caller renders in-process."""
    path = socket_path()
    if not _private(path.parent):
        return None  # never hand streams and environment to a socket another user could own
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        return None
    with conn:
        request = json.dumps({"args": args, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        try:
            socket.send_fds(conn, [_HEADER.pack(len(request)) + request], [0, 1, 2])
        except OSError:
            return None  # nothing was run: render in this process
        pid: int | None = None
        try:
            first = _receive(conn, 4)
            pid = struct.unpack("!i", first)[0] if first else None
            answer = _receive(conn, 4) if first else None
        except KeyboardInterrupt:
            return _interrupted(conn, pid)
        except OSError:
            answer = None
    if answer == struct.pack("!i", STALE):
        _start(path)
        return None
    if answer is None:
        sys.stderr.write(
            "Error: the render server ended without an answer. Run the command again, or set "
            "AUTODEVHUB_NO_SERVER=1 to render in this process.\n"
        )
        return 1
    return int(struct.unpack("!i", answer)[0])


def _interrupted(conn: socket.socket, pid: int | None) -> int:
    """Ctrl-C reaches this process only: interrupt the server's child too, which reports it
    on the same terminal and exits 130."""
    import signal

    if pid is None:
        return 130
    try:
        os.kill(pid, signal.SIGINT)
        conn.settimeout(5)
        answer = _receive(conn, 4)
    except (OSError, KeyboardInterrupt):
        answer = None
    return int(struct.unpack("!i", answer)[0]) if answer else 130


def _receive(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def start() -> None:
    """Start a server for this code in the background (it exits at once if one runs)."""
    _start(socket_path())


def _start(path: Path) -> None:
    """Start a server for this code in the background, detached from this terminal."""
    import subprocess

    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        subprocess.Popen(
            [sys.executable, "-m", "autodevhub_cli.render_server", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            cwd="/",
            env={k: v for k, v in os.environ.items() if not k.startswith("AUTODEVHUB_")},
        )
    except OSError:
        pass  # no server: every render runs in its own process, as without one


def stop_servers() -> list[int]:
    """Stop this user's render servers (their pids), such as before a benchmark ends."""
    import signal

    stopped = []
    for lock in _runtime_dir().glob("*.lock"):
        try:
            pid = int(lock.read_text().strip() or 0)
            if pid:
                os.kill(pid, signal.SIGTERM)
                stopped.append(pid)
        except (OSError, ValueError):
            continue
    return stopped


# --- server ------------------------------------------------------------------------------


def serve(path: Path) -> None:
    """Listen on `path` until `IDLE_SECONDS` pass without a request; one fork per request."""
    import fcntl
    import signal

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not _private(path.parent):
        return  # a folder someone else could write to: no server
    # Opened without truncating: a second server must not wipe the first one's pid.
    lock = open(path.with_suffix(".lock"), "a+")  # noqa: SIM115 - held for the server's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # another server for this code is starting or running
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")  # who to stop (`stop_servers`)
    lock.flush()
    _warm_up()
    identity = _identity()
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old_umask)
    listener.listen(16)
    listener.settimeout(IDLE_SECONDS)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                return
            with conn:
                if _identity() != identity:
                    # Edited or upgraded since it started: say so, and make way for a new one.
                    with contextlib.suppress(OSError):
                        conn.sendall(struct.pack("!ii", 0, STALE))
                    return
                _handle(conn, listener)
    finally:
        path.unlink(missing_ok=True)


def _warm_up() -> None:
    """Import what a render uses and build the value model's validator, once."""
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    import autodevhub_cli.core.pipeline
    import autodevhub_cli.core.render
    import autodevhub_cli.core.validate
    import autodevhub_cli.main  # noqa: F401
    from autodevhub_cli.core.environment import Environment

    Environment.model_rebuild(force=True)
    import gc

    # What is imported now stays out of the collector's walks, so a forked child does not
    # touch (and copy) the parent's pages to collect it; the same as a pre-forking web server.
    gc.collect()
    gc.freeze()


def _handle(conn: socket.socket, listener: socket.socket) -> None:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    if uid != os.getuid():
        return
    conn.settimeout(10)
    try:
        message, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
        size = _HEADER.unpack(message[: _HEADER.size])[0]
        body = message[_HEADER.size :]
        while len(body) < size:
            chunk = conn.recv(size - len(body))
            if not chunk:
                raise OSError("short request")
            body += chunk
        request = json.loads(body)
    except (OSError, ValueError, struct.error):
        return
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        return
    child = os.fork()
    if child:
        for fd in fds:
            os.close(fd)
        return
    listener.close()
    conn.settimeout(None)
    try:
        conn.sendall(struct.pack("!i", os.getpid()))
    except OSError:
        os._exit(1)
    code = _run_child(request, fds)
    with contextlib.suppress(OSError):  # the caller is gone: nobody to tell
        conn.sendall(struct.pack("!i", code))
    os._exit(code)


def _run_child(request: dict[str, object], fds: list[int]) -> int:
    """In the forked child: become the caller's process (folder, environment, streams) and
    run the console script's code with its arguments."""
    import gc
    import signal

    gc.disable()  # one short render: no collections (and no copied pages) in the child
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    env = request.get("env")
    args = request.get("args")
    cwd = request.get("cwd")
    if not isinstance(env, dict) or not isinstance(args, list) or not isinstance(cwd, str):
        return 1
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in env.items()})
    os.environ["AUTODEVHUB_NO_SERVER"] = "1"  # this child renders; it asks no server
    code = 0
    try:
        os.chdir(cwd)
        sys.argv = ["autodevhub", *[str(a) for a in args]]
        from autodevhub_cli.entry import main

        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except OSError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError):  # a closed pipe on the caller's side
                stream.flush()
    return code


if __name__ == "__main__":
    if sys.argv[1:] == ["stop"]:
        print(" ".join(map(str, stop_servers())) or "no render server runs")
    else:
        serve(Path(sys.argv[1]))
