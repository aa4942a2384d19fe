"""Options shared by several commands."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer


def typer_app(**settings: Any) -> typer.Typer:
    """A Typer app with the settings every autodevhub command and command group has: plain
    help text, no shell-completion options, errors reported by autodevhub_cli.main."""
    return typer.Typer(
        add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None, **settings
    )


class OutputFormat(StrEnum):
    """How a command prints its result."""

    text = "text"
    json = "json"


ProjectDir = Annotated[
    Path | None,
    typer.Option(
        "--project-dir",
        "-C",
        envvar="AUTODEVHUB_PROJECT_DIR",
        help="Project folder holding environments/ and templates/ (default: current folder).",
        show_default=False,
    ),
]
Env = Annotated[str, typer.Option("--env", "-e", help="Environment name: environments/<ENV>.yaml.")]
Sets = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override a value, e.g. --set components.web.replicas=3 (repeatable).",
        show_default=False,
    ),
]


def seconds(value: float | None) -> float | None:
    """A --timeout no deadline can use (NaN, infinity, 0 or less, over a day) is refused before
    the command starts, with exit code 2."""
    if value is None:
        return None
    from autodevhub_cli.core.smoke import check_timeout

    return check_timeout(value, "--timeout")


Output = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="Result format: text or json.")
]
KubeVersion = Annotated[
    str | None,
    typer.Option(
        "--kube-version",
        help="Kubernetes version to validate against, 1.30-1.37 (default: the environment's, "
        "else 1.33).",
        show_default=False,
    ),
]
KubeContext = Annotated[
    str | None,
    typer.Option(
        "--context",
        help="Kube context (default: the environment's kubernetes.context, else the current).",
        show_default=False,
    ),
]
Kubeconfig = Annotated[
    str | None,
    typer.Option(
        "--kubeconfig",
        help="Kubeconfig file (default: kubernetes.kubeconfig, $KUBECONFIG, ~/.kube/config; "
        "in a pod, its ServiceAccount).",
        show_default=False,
    ),
]
ForceConflicts = Annotated[
    bool,
    typer.Option("--force-conflicts", help="Take ownership of fields another field manager owns."),
]
Prune = Annotated[
    bool,
    typer.Option(
        "--prune/--no-prune",
        help="Delete this environment's labelled objects that are no longer rendered.",
    ),
]
Images = Annotated[
    Path | None,
    typer.Option(
        "--images",
        help="Pin images to a build: the JSON of `autodevhub build --output json` (or "
        ".autodevhub/builds/ENV.json); renders image:tag@sha256:digest.",
        show_default=False,
    ),
]
