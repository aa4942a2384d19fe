"""`autodevhub secrets set` and `autodevhub secrets rotate`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from autodevhub_cli.commands.options import (
    Kubeconfig,
    KubeContext,
    Output,
    OutputFormat,
    ProjectDir,
    seconds,
    typer_app,
)
from autodevhub_cli.commands.progress import Progress
from autodevhub_cli.core.errors import ConfigError

app = typer_app(help="Write Secret values and restart what uses them.", no_args_is_help=True)
Env = Annotated[str, typer.Option("--env", "-e", help="Environment name.")]
SecretName = Annotated[
    str | None,
    typer.Option("--secret", help="Secret name (default: the one the environment references)."),
]
FromFile = Annotated[
    Path | None,
    typer.Option("--from-file", help="Read values from this file (KEY=VALUE lines for `set`)."),
]
NoVerify = Annotated[bool, typer.Option("--no-verify", help="Skip the smoke checks.")]
Timeout = Annotated[
    float,
    typer.Option("--timeout", help="Seconds to wait for the restart.", callback=seconds),
]


def _stdin(what: str) -> str:
    if sys.stdin is None or sys.stdin.isatty():
        raise ConfigError(
            f"No {what} given.",
            hint="Pipe them on stdin or pass --from-file; values on the command line land in "
            "shell history (use --allow-argv if you must).",
        )
    try:
        return sys.stdin.read()
    except UnicodeDecodeError:
        raise ConfigError(f"stdin is not UTF-8 text (expected {what}; it is not shown).") from None


def _run(env: str, values: dict[str, str], **kwargs: Any) -> None:
    from autodevhub_cli.core.config import load_environment
    from autodevhub_cli.core.project import find_project
    from autodevhub_cli.core.secrets import set_secret
    from autodevhub_cli.core.targets import TargetOptions, target_for

    output = kwargs.pop("output")
    project_dir = kwargs.pop("project_dir")
    options = TargetOptions(context=kwargs.pop("context"), kubeconfig=kwargs.pop("kubeconfig"))
    project = find_project(project_dir)
    environment = load_environment(project, env)
    progress = Progress(verbose=False)
    with progress.live():
        target = target_for(environment, options, progress)
        change = set_secret(environment, values, target=target, report=progress, **kwargs)
    if output is OutputFormat.json:
        sys.stdout.write(json.dumps(change.to_dict(), indent=2) + "\n")
        return
    verb = "created" if change.created else "updated"
    sys.stdout.write(
        f"Secret {change.namespace}/{change.secret} {verb}: {', '.join(change.keys)}; restarted "
        f"{', '.join(change.restarted) or 'nothing'}"
        + ("; smoke checks passed.\n" if change.smoke_ok else ".\n")
    )


@app.command("set")
def set_values(
    env: Env,
    pairs: Annotated[
        list[str] | None,
        typer.Argument(help="KEY=VALUE pairs: refused unless --allow-argv (shell history)."),
    ] = None,
    from_file: FromFile = None,
    secret: SecretName = None,
    allow_argv: Annotated[
        bool, typer.Option("--allow-argv", help="Accept values on the command line.")
    ] = False,
    allow_unreferenced: Annotated[
        bool, typer.Option("--allow-unreferenced", help="Store keys no workload references.")
    ] = False,
    no_verify: NoVerify = False,
    timeout: Timeout = 300.0,
    context: KubeContext = None,
    kubeconfig: Kubeconfig = None,
    output: Output = OutputFormat.text,
    project_dir: ProjectDir = None,
) -> None:
    """Write KEY=VALUE pairs (stdin or --from-file) into the Secret, restart its users, verify."""
    from autodevhub_cli.core.secrets import parse_pairs

    if pairs:
        if not allow_argv:
            raise ConfigError(
                "Secret values on the command line are refused: they stay in shell history and "
                "process listings.",
                hint="Pipe KEY=VALUE lines on stdin or pass --from-file (or --allow-argv).",
            )
        values = parse_pairs("\n".join(pairs), "the command line")
    elif from_file is not None:
        values = parse_pairs(_read(from_file), str(from_file))
    else:
        values = parse_pairs(_stdin("KEY=VALUE lines"), "stdin")
    _run(
        env,
        values,
        secret=secret,
        allow_unreferenced=allow_unreferenced,
        verify=not no_verify,
        timeout=timeout,
        context=context,
        kubeconfig=kubeconfig,
        output=output,
        project_dir=project_dir,
    )


@app.command("rotate")
def rotate(
    env: Env,
    key: Annotated[str, typer.Argument(help="The Secret key to rotate, e.g. anthropic-api-key.")],
    from_file: FromFile = None,
    secret: SecretName = None,
    no_verify: NoVerify = False,
    timeout: Timeout = 300.0,
    context: KubeContext = None,
    kubeconfig: Kubeconfig = None,
    output: Output = OutputFormat.text,
    project_dir: ProjectDir = None,
) -> None:
    """Replace one key's value (stdin or --from-file), restart its users and verify them."""
    raw = _read(from_file) if from_file is not None else _stdin("new value")
    value = raw.rstrip("\n")
    if not value:
        raise ConfigError(f"The new value for {key} is empty.")
    _run(
        env,
        {key: value},
        secret=secret,
        verify=not no_verify,
        timeout=timeout,
        context=context,
        kubeconfig=kubeconfig,
        output=output,
        project_dir=project_dir,
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror}.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text (its contents are not shown).") from None
