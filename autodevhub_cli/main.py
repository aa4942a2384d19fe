"""The `autodevhub` command: registers commands, turns errors into messages and exit codes."""

from __future__ import annotations

import importlib
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

# pydantic looks for plugins through every installed distribution's entry points on first use
# (tens of ms); autodevhub uses none. A caller can still opt in by setting the variable.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

import typer
import typer.main
from typer.core import TyperGroup

from autodevhub_cli import __version__
from autodevhub_cli.commands.options import typer_app
from autodevhub_cli.core.errors import INTERRUPTED, AutodevhubError, reported, signal_name
from autodevhub_cli.logs import configure_logging

EXIT_UNEXPECTED = 1


def _debug_log_path() -> Path:
    import tempfile

    base = os.environ.get("XDG_STATE_HOME") or os.path.join(tempfile.gettempdir())
    return Path(base) / "autodevhub-debug.log"


def _print_error(title: str, body: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(f"[bold red]{title}:[/] {escape(body)}")


def _interruption(exc: KeyboardInterrupt) -> tuple[int, str]:
    """Exit code (128 + the signal's number) and message of an interrupted command.

    A KeyboardInterrupt's args are (signal name, message), both optional: Ctrl-C raises it
    bare, `_on_sigterm` names SIGTERM, and a deploy adds where it stopped and what it left
    (core.deploy.DeployInterrupted)."""
    message = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], str) else INTERRUPTED
    return 128 + int(signal.Signals[signal_name(exc)]), message


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM (a cancelled CI job, `kill`, a pod shutting down) unwinds the command the way
    Ctrl-C does, so the same cleanup runs: the deploy records where it stopped, rolls back what
    it had begun to switch and gives its lock back; the process then exits 143."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


# Every command: its name, and the function (or sub-app) in autodevhub_cli/commands that
# implements it. A command's module is imported when that command runs (or for --help), so
# `autodevhub render` does not pay for the imports and parameter parsing of the other 17.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("init", "init"),
    "render": ("render", "render"),
    "validate": ("render", "validate"),
    "schema": ("schema", "schema"),
    "build": ("build", "build"),
    "deploy": ("deploy", "deploy"),
    "smoke-test": ("smoke", "smoke_test"),
    "status": ("deploy", "status"),
    "history": ("deploy", "history"),
    "rollback": ("deploy", "rollback"),
    "down": ("deploy", "down"),
    "promote": ("deploy", "promote"),
    "diff": ("deploy", "diff"),
    "logs": ("logs", "logs"),
    "dev": ("dev", "dev"),
    "db": ("db", "app"),
    "doctor": ("doctor", "doctor"),
    "secrets": ("secrets", "app"),
}


class AutodevhubGroup(TyperGroup):
    """The command group: commands loaded when asked for, and the one place that turns errors
    into a red message and an exit code."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[cmd_name]
        module = importlib.import_module(f"autodevhub_cli.commands.{module_name}")
        implementation = getattr(module, attribute)
        if isinstance(implementation, typer.Typer):  # a group of its own (db, secrets)
            command = typer.main.get_command(implementation)
            command.name = cmd_name
            return command
        single = typer_app()
        single.command(cmd_name)(implementation)
        return typer.main.get_command(single)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AutodevhubError as exc:
            message, code = reported(exc)
            _print_error("Error", message)
            raise typer.Exit(code) from None
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except BrokenPipeError:
            # The reader went away (`autodevhub validate | head -1`): Click ends quietly.
            raise
        except KeyboardInterrupt as exc:
            code, message = _interruption(exc)
            _print_error("Interrupted", message)
            raise typer.Exit(code) from None
        except Exception as exc:
            log = _debug_log_path()
            try:
                with open(log, "a", encoding="utf-8") as handle:
                    import traceback

                    handle.write(traceback.format_exc() + "\n")
                where = f"The traceback is in {log}."
            except OSError:
                where = "No traceback could be written."
            _print_error(
                "Unexpected error",
                f"{type(exc).__name__}: {exc}. This is a bug in autodevhub, not in your input. "
                f"{where} Please report it with that file.",
            )
            raise typer.Exit(EXIT_UNEXPECTED) from None


app = typer_app(
    name="autodevhub",
    cls=AutodevhubGroup,
    help="Deployment as code: typed environments rendered to Compose or Kubernetes, built, "
    "deployed, smoke-checked and rolled back.",
    no_args_is_help=True,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"autodevhub {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Deployment as code: render, build, deploy, check and roll back a project's components."""
    configure_logging()


def main() -> None:
    """Console-script entry point."""
    # Here, not at import: a caller that imports the app (tests, a Python program) keeps its own.
    signal.signal(signal.SIGTERM, _on_sigterm)
    app(prog_name="autodevhub")
