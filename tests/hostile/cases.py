"""The table-driven hostile-input suite's runner: one `Case` is an input to the CLI, the exit
code and the words the user must see, what must never appear, and the files that must be
unchanged afterwards.

A case edits a throwaway copy of the project (`setup`), then runs the command either in this
process (fast) or, where the input could hang or eat memory, as a child process with a time
limit and an address-space limit: "no hang" and "no blow-up" are then what the test shows.
Every case also asserts what holds for any input: no traceback, no "Unexpected error", and an
exit code that is not 1 unless the case says so.
"""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import copy_project, run_cli

Setup = Callable[[Path], None]


@dataclass(frozen=True)
class Case:
    """One hostile or mistaken input."""

    id: str
    args: Sequence[str]
    setup: Setup | None = None
    code: int = 2
    words: Sequence[str] = ()
    out_words: Sequence[str] = ()  # what stdout must hold (a value rendered as it was given)
    # Text that must appear nowhere in stdout or stderr (a secret, a path outside the project).
    absent: Sequence[str] = ()
    # Paths (relative to the project copy, `{tmp}/...` for the test's folder) whose files must
    # be byte for byte what they were after `setup`.
    unchanged: Sequence[str] = ("environments", "templates")
    # Files that must not exist afterwards (a command a template tried to run would make one).
    missing: Sequence[str] = ()
    child: bool = False  # run as a child process, with the bounds below
    seconds: float = 60
    memory_mib: int = 1024
    env: dict[str, str] = field(default_factory=dict)


def snapshot(path: Path) -> dict[str, str]:
    """sha256 of every regular file under `path` (itself, for a file)."""
    if path.is_file():
        return {"": hashlib.sha256(path.read_bytes()).hexdigest()}
    found = {}
    for where, _, names in os.walk(path):
        for name in names:
            full = Path(where, name)
            if full.is_file() and not full.is_symlink():
                found[str(full.relative_to(path))] = hashlib.sha256(full.read_bytes()).hexdigest()
    return found


def _expand(text: str, project: Path, tmp: Path) -> str:
    return text.replace("{project}", str(project)).replace("{tmp}", str(tmp))


def _limits(memory_mib: int) -> Callable[[], None]:
    def apply() -> None:
        limit = memory_mib * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def run_case(case: Case, tmp: Path) -> tuple[int, str, str]:
    """Run `case` in a fresh project copy under `tmp` and check everything it promises."""
    project = copy_project(tmp / "project")
    if case.setup is not None:
        case.setup(project)
    watched = {
        where: snapshot(_path(where, project, tmp))
        for where in case.unchanged
        if _path(where, project, tmp).exists()
    }
    args = [_expand(a, project, tmp) for a in case.args]
    if "--project-dir" not in args and args and args[0] not in ("init", "--help"):
        args += ["--project-dir", str(project)]
    env = {k: _expand(v, project, tmp) for k, v in case.env.items()}
    if case.child:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "autodevhub_cli", *args],
                capture_output=True,
                text=True,
                timeout=case.seconds,
                env={**os.environ, **env},
                cwd=tmp,
                preexec_fn=_limits(case.memory_mib),
            )
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{case.id}: still running after {case.seconds} s") from None
        code, out, err = done.returncode, done.stdout, done.stderr
    else:
        code, out, err = run_cli(*args, env=env or None)
    text = out + err
    message = " ".join(err.split())
    assert code == case.code, f"{case.id}: exit {code}, expected {case.code}\n{out}\n{err}"
    assert "Traceback" not in text, f"{case.id}: {text}"
    assert "Unexpected error" not in text, f"{case.id}: {text}"
    assert "MemoryError" not in text, f"{case.id}: {text}"
    for word in case.words:
        word = _expand(word, project, tmp)
        assert " ".join(word.split()) in message, f"{case.id}: {word!r} not in: {message}"
    for word in case.out_words:
        assert _expand(word, project, tmp) in out, f"{case.id}: {word!r} not in stdout: {out}"
    for secret in case.absent:
        assert _expand(secret, project, tmp) not in text, f"{case.id}: {secret!r} shown: {text}"
    for where, before in watched.items():
        assert snapshot(_path(where, project, tmp)) == before, f"{case.id}: {where} changed"
    for where in case.missing:
        assert not _path(where, project, tmp).exists(), f"{case.id}: {where} exists"
    return code, out, err


def _path(where: str, project: Path, tmp: Path) -> Path:
    return Path(_expand(where, project, tmp)) if "{" in where else project / where
