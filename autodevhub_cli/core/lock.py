"""One deploy per environment at a time: an exclusive `flock` on `.autodevhub/locks/<env>.lock`.

The kernel releases the lock when its holder exits, even on a crash or SIGKILL, so a lock never
goes stale; the file also says who holds it and since when, for the message a second deploy shows.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from autodevhub_cli.core.errors import AutodevhubError
from autodevhub_cli.core.records import record_error


class DeployLockedError(AutodevhubError):
    """Another deploy of the same environment holds the lock."""


class LockLostError(AutodevhubError):
    """The deploy no longer holds its lock (taken over, gone, or not renewed in time)."""


@dataclass
class DeployLock:
    """An exclusive, crash-safe lock for one environment of a project."""

    path: Path
    environment: str
    command: str = "deploy"
    _fd: int | None = None

    def acquire(self) -> DeployLock:
        """Take the lock or raise DeployLockedError naming the holder (RecordError when the lock
        file cannot be written: no space left, a read-only or foreign folder)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            error = record_error(self.path, exc)
            error.explain("No deploy was started: the deploy lock lives in this file.")
            raise error from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DeployLockedError(
                f"Another {holder.get('command', 'deploy')} of environment {self.environment!r} is "
                f"running: pid {holder.get('pid', '?')} on {holder.get('host', '?')} "
                f"(user {holder.get('user', '?')}) since {holder.get('since', '?')}.",
                hint="Wait for it to finish; the lock is released as soon as that process ends.",
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "user": _user(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": self.command,
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError as exc:
            # Held but unnamed, and the release records could not be written either: stop here.
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            error = record_error(self.path, exc)
            error.explain("No deploy was started.")
            raise error from None
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock back (also happens when the process exits)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DeployLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> dict[str, object]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return data if isinstance(data, dict) else {}
    except ValueError:
        return {}


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
