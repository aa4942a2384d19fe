"""One error model for every pipeline stage; the CLI turns these into messages and exit codes."""

from __future__ import annotations

from collections.abc import Sequence

INTERRUPTED = "stopped by the user; nothing more was done."  # after Ctrl-C, on every path


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
