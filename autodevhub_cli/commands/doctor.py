"""`autodevhub doctor`."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from autodevhub_cli.commands.options import (
    Kubeconfig,
    KubeContext,
    Output,
    OutputFormat,
    ProjectDir,
)
from autodevhub_cli.core.errors import AutodevhubError


class DoctorFailed(AutodevhubError):
    """At least one check failed."""


def doctor(
    env: Annotated[
        str | None,
        typer.Option("--env", "-e", help="Environment to check (default: every Compose one)."),
    ] = None,
    context: KubeContext = None,
    kubeconfig: Kubeconfig = None,
    output: Output = OutputFormat.text,
    project_dir: ProjectDir = None,
) -> None:
    """Check what a deploy needs (engine, Compose, registry, cluster, RBAC, Secrets, CRDs)."""
    from autodevhub_cli.core.config import load_environment
    from autodevhub_cli.core.doctor import diagnose, summary_line
    from autodevhub_cli.core.project import find_project

    project = find_project(project_dir)
    sets = [f"kubernetes.context={context}"] if context else []
    sets += [f"kubernetes.kubeconfig={kubeconfig}"] if kubeconfig else []
    names = (
        [env]
        if env
        else [
            n
            for n in project.environment_names()
            if load_environment(project, n).target == "compose"
        ]
    )
    report = {}
    for name in names:
        environment = load_environment(project, name, sets)
        report[name] = diagnose(environment, project=project)
    failed = [f for findings in report.values() for f in findings if not f.ok]
    if output is OutputFormat.json:
        data = {name: [f.to_dict() for f in findings] for name, findings in report.items()}
        sys.stdout.write(json.dumps({"ok": not failed, "environments": data}, indent=2) + "\n")
    else:
        for name, findings in report.items():
            sys.stdout.write(f"{name}: {summary_line(findings)}\n")
            for f in findings:
                mark = "ok  " if f.ok else "FAIL"
                sys.stdout.write(f"  {mark} {f.check}: {f.detail}\n")
                if not f.ok and f.fix:
                    sys.stdout.write(f"       fix: {f.fix}\n")
    if failed:
        raise DoctorFailed(
            f"{len(failed)} check(s) failed: "
            + "; ".join(f"{f.check}: {f.detail}" for f in failed),
            hint="Each failed check above says how to fix it.",
        )
