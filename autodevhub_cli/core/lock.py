"""One deploy per environment at a time: a lock held in the target itself (a Lease in the
namespace, a named container on the Docker host), so two CI runners or two laptops exclude each
other, not only two processes on one machine.

The holder renews the lock while it works; a lock not renewed within its duration is stale (its
holder died) and the next command takes it over. Every command checks, before each step that
changes something, that the lock is still its own.
"""

from __future__ import annotations

import datetime as dt
import getpass
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from autodevhub_cli.core.errors import AutodevhubError

log = logging.getLogger("autodevhub.lock")

DURATION_SECONDS = 60


class DeployLockedError(AutodevhubError):
    """Another deploy of the same environment holds the lock."""


class LockLostError(AutodevhubError):
    """The deploy no longer holds its lock (taken over, gone, or not renewed in time)."""


def now() -> dt.datetime:
    """The time locks are stamped with (UTC)."""
    return dt.datetime.now(dt.UTC)


def stamp(moment: dt.datetime) -> str:
    """A lock's time as it is written down (RFC 3339, microseconds, UTC)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_stamp(text: str) -> dt.datetime | None:
    """A time `stamp` wrote, or None."""
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this host (one we may not signal counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def user_and_host() -> tuple[str, str]:
    """Who runs this command, and where (the uid when the user has no name)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return user, socket.gethostname()


def identity() -> str:
    """Who holds a lock: `user@host pid N`."""
    user, host = user_and_host()
    return f"{user}@{host} pid {os.getpid()}"


class RenewedLock:
    """A lock in the target, renewed in the background while held. Subclasses say how to take,
    renew, inspect and give back their object."""

    def __init__(self, what: str, duration: int = DURATION_SECONDS) -> None:
        self.what = what  # `Lease staging/autodevhub-staging`, for messages
        self.duration = duration
        self.identity = identity()
        self.lost: str | None = None  # why the lock is no longer ours, once it is not
        self._renewed = now()

    def acquire(self, command: str) -> None:
        """Take the lock, or raise DeployLockedError naming its live holder."""
        raise NotImplementedError

    def renew(self, command: str) -> None:
        """Push the renewal time forward; set `lost` when the lock is gone or another's."""
        raise NotImplementedError

    def holder(self) -> str | None:
        """Who holds the lock now (None when nobody does); raises when the target does not
        answer."""
        raise NotImplementedError

    def release(self) -> None:
        """Give the lock back if it is still ours."""
        raise NotImplementedError

    def renewed(self) -> None:
        """Note a successful renewal (the silence `check` counts starts again)."""
        self._renewed = now()

    def check(self) -> None:
        """Raise LockLostError unless the lock is still this command's: not lost, and renewed
        within a third of its duration (past that, another command may soon take it)."""
        if self.lost is None:
            try:
                holder = self.holder()
            except Exception:  # unreachable now: the silence below decides
                holder = self.identity
            if holder is None:
                self.lost = f"{self.what} was deleted while this deploy held it"
            elif holder != self.identity:
                self.lost = f"{self.what} was taken over by {holder}"
        if self.lost is None:
            silent = (now() - self._renewed).total_seconds()
            if silent > self.duration / 3:
                self.lost = (
                    f"{self.what} has not been renewed for {silent:.0f}s (the limit is a third "
                    f"of its {self.duration}s duration)"
                )
        if self.lost is not None:
            raise LockLostError(
                f"The deploy stopped: {self.lost}. Nothing more was changed after that.",
                hint="Check who deploys this environment (`autodevhub status`), then deploy again.",
            )

    @contextmanager
    def hold(self, command: str) -> Iterator[None]:
        """Hold the lock for a block, renewing it in the background. It is given back however
        the block ends, a signal included, even one that lands while the lock is being taken
        (its write may have reached the target); `release` leaves another holder's alone."""
        stop = threading.Event()

        def renew_loop() -> None:
            # Every sixth of the duration: one missed renewal still leaves the deploy within
            # the third that `check` allows; two in a row stop it at its next step.
            while not stop.wait(self.duration / 6) and self.lost is None:
                try:
                    self.renew(command)
                except Exception:  # retried at the next tick; `check` counts the silence
                    continue

        thread = threading.Thread(target=renew_loop, name="lock-renewal", daemon=True)
        try:
            self.acquire(command)
            self.renewed()
            thread.start()
            yield
        finally:
            stop.set()
            if thread.ident is not None:
                thread.join(timeout=5)
            try:
                self.release()
            except AutodevhubError as exc:  # the command's own outcome matters more
                log.warning("could not give %s back (%s); it expires by itself", self.what, exc)
