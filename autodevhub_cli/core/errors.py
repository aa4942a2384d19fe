"""One error model for every pipeline stage; the CLI turns these into messages and exit codes."""

from __future__ import annotations

import errno as errno_module
import signal
from collections.abc import Sequence
from pathlib import Path

INTERRUPTED = "stopped by the user; nothing more was done."  # after Ctrl-C, on every path


def signal_name(interruption: KeyboardInterrupt) -> str:
    """The signal that raised an interruption: its args start with the signal's name when the
    CLI's SIGTERM handler (or a deploy passing it on) raised it; Ctrl-C raises it bare."""
    named = interruption.args[0] if interruption.args else None
    return named if isinstance(named, str) and named in signal.Signals.__members__ else "SIGINT"


class AutodevhubError(Exception):
    """Root of every error autodevhub reports to a user: a message that says what to do next."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if not self.hint:
            return self.message
        # After a message that ends in an indented block (log lines), the hint gets its own line.
        separator = "\n" if "\n" in self.message else " "
        return f"{self.message}{separator}{self.hint}"


class ConfigError(AutodevhubError):
    """An environment file, a `--set` override or a project folder is wrong."""

    exit_code = 2


class RenderError(AutodevhubError):
    """A template could not be rendered (undefined value, syntax error, bad YAML out)."""

    exit_code = 2


class ValidationError(AutodevhubError):
    """A rendered document breaks its schema (Kubernetes, CRD or Compose)."""

    exit_code = 2

    def __init__(self, message: str, *, problems: Sequence[str] = (), hint: str | None = None):
        super().__init__(message, hint=hint)
        self.problems = list(problems)

    def __str__(self) -> str:
        lines = [self.message, *(f"  - {p}" for p in self.problems)]
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


class ToolError(AutodevhubError):
    """An external program failed: carries the command, its exit code and the tail of its output."""

    def __init__(
        self,
        message: str,
        *,
        command: Sequence[str],
        returncode: int | None,
        output: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.command = list(command)
        self.returncode = returncode
        self.output_tail = "\n".join(output.strip().splitlines()[-15:])

    def __str__(self) -> str:
        text = f"{self.message}\n  command: {' '.join(self.command)} (exit code {self.returncode})"
        if self.output_tail:
            text += "\n  output:\n" + "\n".join(f"    {ln}" for ln in self.output_tail.splitlines())
        if self.hint:
            text += f"\n{self.hint}"
        return text


class BuildError(AutodevhubError):
    """An image could not be built."""


class PushError(AutodevhubError):
    """An image could not be pushed to its registry."""


class ApplyError(AutodevhubError):
    """Rendered objects could not be applied to the target."""


class RolloutError(AutodevhubError):
    """A rollout did not become healthy in time."""


class SmokeCheckError(AutodevhubError):
    """A smoke check failed against the deployed release."""

    exit_code = 3


class RecordingError(AutodevhubError):
    """A record could not be written or read; often met while recording an earlier failure."""

    def explain(self, consequence: str) -> None:
        """Add what the missing record means (said by the caller that knows), before the hint."""
        self.message = f"{self.message} {consequence}"
        self.args = (self.message,)


class StoreError(RecordingError):
    """The release store that lives with the target (Secrets in the namespace, a volume on the
    Docker host) could not be read or written, or holds a record this version cannot read."""


class RecordError(RecordingError):
    """A record under the project's `.autodevhub/` could not be written (no space left, a
    read-only filesystem, no permission): names the file, the reason and what to do."""

    def __init__(
        self,
        path: Path,
        reason: str,
        *,
        errno: int | None,
        filesystem: Path | None = None,
        free_bytes: int | None = None,
    ) -> None:
        self.path = path
        self.reason = reason
        self.errno = errno
        self.filesystem = filesystem
        self.free_bytes = free_bytes
        super().__init__(f"Could not write {path}: {reason}.", hint=self._what_to_do())

    def _what_to_do(self) -> str:
        where = f"the filesystem mounted at {self.filesystem}" if self.filesystem else "its disk"
        if self.errno in (errno_module.ENOSPC, errno_module.EDQUOT):
            free = "" if self.free_bytes is None else f" ({_size(self.free_bytes)} free now)"
            return f"Free space on {where}{free}, then run the command again."
        if self.errno == errno_module.EROFS:
            return (
                f"{where[0].upper()}{where[1:]} is read-only: remount it read-write, then run "
                "the command again."
            )
        if self.errno in (errno_module.EACCES, errno_module.EPERM):
            return f"Make {self.path.parent} writable for this user, then run the command again."
        return f"Check {where}, then run the command again."


def _size(count: int) -> str:
    """`0 bytes`, `12.0 KiB`, `3.4 MiB`."""
    if count < 1024:
        return f"{count} byte{'' if count == 1 else 's'}"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def reported(error: AutodevhubError) -> tuple[str, int]:
    """The message and exit code to show for `error`.

    A record that cannot be written is often met again while recording an earlier failure
    (a full disk stays full, an unreachable store stays unreachable): then that earlier failure
    is what happened, and is shown first.
    """
    if not isinstance(error, RecordingError):
        return str(error), error.exit_code
    cause = _cause_being_recorded(error)
    if cause is error:
        return str(error), error.exit_code
    if isinstance(cause, RecordingError):
        also = ""
        if (
            isinstance(cause, RecordError)
            and isinstance(error, RecordError)
            and cause.path != error.path
        ):
            also = f" {error.path} could not be written either."
        tail = f" {cause.hint}" if cause.hint else ""
        return f"{cause.message}{also}{tail}", cause.exit_code
    return f"{cause} Recording that failed too: {error}", cause.exit_code


def _cause_being_recorded(error: RecordingError) -> AutodevhubError:
    """The first error, down the chain of errors raised while handling others, that is not a
    RecordingError (else the earliest one)."""
    found: AutodevhubError = error
    seen = error.__context__
    while seen is not None:
        if isinstance(seen, AutodevhubError):
            found = seen
            if not isinstance(seen, RecordingError):
                break
        seen = seen.__context__
    return found
