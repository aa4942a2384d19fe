"""Helpers shared by the CLI and core tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from autodevhub_cli.main import app

REPO = Path(__file__).resolve().parent.parent


def copy_project(dest: Path, with_service: bool = False) -> Path:
    """A throwaway copy of the project files (environments/, templates/ and, for builds,
    service/ without build outputs)."""
    for folder in ("environments", "templates"):
        shutil.copytree(REPO / folder, dest / folder)
    if with_service:
        shutil.copytree(
            REPO / "service",
            dest / "service",
            ignore=shutil.ignore_patterns("__pycache__", "dist", "node_modules", "var", "*.db"),
        )
    return dest


def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run the CLI in-process; return exit code, stdout and stderr."""
    runner = CliRunner()
    result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def documents(text: str) -> list[dict]:
    """Parse a multi-document YAML stream."""
    return [d for d in yaml.safe_load_all(text) if d is not None]


def find(docs: list[dict], kind: str, name: str) -> dict:
    """The one document of `kind` named `name`."""
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def default_sigint() -> None:
    """A `preexec_fn` giving the child the default SIGINT disposition, as in a terminal.

    A shell starts background jobs (`cmd &`, a CI runner's detached script) with SIGINT ignored,
    and Python leaves an inherited SIG_IGN alone: a test that sends SIGINT must undo that."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def postgres_tool(name: str) -> Path | None:
    """The newest installed PostgreSQL's client tool `name` (pg_dump, pg_restore), if any."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return found[-1] if found else None


def recording_pg_dump(bin_dir: Path, record: Path, real: Path) -> None:
    """A `pg_dump` in `bin_dir` that records what it was given, then runs the real one:
    its arguments (`<record>.args`), environment (`.env`), and the mode (`.mode`) and contents
    (`.pgpass`) of the file $PGPASSFILE names."""
    script = bin_dir / "pg_dump"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {record}.args\n'
        f"env > {record}.env\n"
        f'stat -c %a "$PGPASSFILE" > {record}.mode\n'
        f'cat "$PGPASSFILE" > {record}.pgpass\n'
        f'exec {real} "$@"\n'
    )
    script.chmod(0o755)


class HeldEndpoint:
    """A local HTTP endpoint that holds every GET until `opened` is set, then answers `status`:
    a backend that hangs, or a gate that keeps a deploy in its smoke step as long as a test
    needs. `asked` is set at the first request."""

    def __init__(self, status: int = 200) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.opened = threading.Event()
        self.asked = threading.Event()
        held = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                held.asked.set()
                held.opened.wait(120)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.opened.set()
        self.server.shutdown()
        self.server.server_close()


class Gathered:
    """A command run as a process of its own (the default SIGINT disposition, as in a terminal),
    its stdout and stderr lines gathered as they come, for a test to wait on and interrupt."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        import subprocess
        import threading

        self.proc = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=default_sigint,
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.errors), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line.rstrip("\n"))

    def interrupt(self, seconds: float = 30) -> int:
        """Ctrl-C: its exit code, once it and the readers have ended."""
        import signal

        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=seconds)
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def stop(self) -> None:
        """Kill it if it still runs (a test's cleanup)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def through_kube_proxy(url: str, seconds: float = 30) -> Any:
    """GET a URL on a Service's cluster IP once kube-proxy routes it (an httpx.Response). A new
    Service's rules reach the node a moment after the API server has them; until then the
    connection is refused, or reaches an address a deleted Service left behind (a 404 was seen
    on the real node while other tests' namespaces were being deleted)."""
    import time

    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            answer = httpx.get(url, timeout=5)
            if answer.status_code == 200 or time.monotonic() > deadline:
                return answer
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)
