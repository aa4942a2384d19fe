"""`autodevhub deploy`, `status`, `history`, `rollback`, `down`, `promote` and `diff`."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from autodevhub_cli.commands import summary
from autodevhub_cli.commands.options import (
    Env,
    ForceConflicts,
    Images,
    Kubeconfig,
    KubeContext,
    Output,
    OutputFormat,
    ProjectDir,
    Prune,
    Sets,
    seconds,
)
from autodevhub_cli.commands.progress import Progress

if TYPE_CHECKING:
    from autodevhub_cli.core.targets import TargetOptions

Timeout = Annotated[
    float,
    typer.Option(
        "--timeout", help="Seconds to wait for the release to become healthy.", callback=seconds
    ),
]


def _options(
    context: str | None, kubeconfig: str | None, force: bool = False, prune: bool = True
) -> TargetOptions:
    from autodevhub_cli.core.targets import TargetOptions

    return TargetOptions(context=context, kubeconfig=kubeconfig, force_conflicts=force, prune=prune)


def _json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def deploy(
    env: Env,
    skip_build: Annotated[
        bool, typer.Option("--skip-build", help="Use the recorded build; build nothing.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Render and show what would change; touch nothing.")
    ] = False,
    timeout: Timeout = 300.0,
    promote: Annotated[
        bool, typer.Option("--promote", help="Blue-green: promote once the preview passes.")
    ] = False,
    keep_failed: Annotated[
        bool,
        typer.Option(
            "--keep-failed",
            help="When a first release fails (nothing to roll back to), leave it running for "
            "debugging instead of stopping it.",
        ),
    ] = False,
    images: Images = None,
    output: Output = OutputFormat.text,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every step.")] = False,
    context: KubeContext = None,
    kubeconfig: Kubeconfig = None,
    force_conflicts: ForceConflicts = False,
    prune: Prune = True,
    sets: Sets = None,
    project_dir: ProjectDir = None,
) -> None:
    """Build, push, migrate, apply, wait, smoke-check and record a release; roll back on failure."""
    from autodevhub_cli.core.deploy import DeployFailed, DeployInterrupted, DeployRequest
    from autodevhub_cli.core.deploy import deploy as run_deploy

    request = DeployRequest(
        environment=env,
        project_dir=project_dir,
        sets=sets or (),
        skip_build=skip_build,
        dry_run=dry_run,
        timeout=timeout,
        promote=promote,
        options=_options(context, kubeconfig, force_conflicts, prune),
        keep_failed=keep_failed,
        images=images,
    )
    progress = Progress(verbose=verbose)
    try:
        with progress.live():
            outcome = run_deploy(request, report=progress)
    except (DeployFailed, DeployInterrupted) as exc:
        _summarise(env, exc.outcome.to_dict(), exc.message)
        if output is OutputFormat.json:
            _json({**exc.outcome.to_dict(), "ok": False, "error": exc.message})
        raise
    if not outcome.dry_run:
        _summarise(env, outcome.to_dict(), None)
    if output is OutputFormat.json:
        _json({**outcome.to_dict(), "ok": True})
        return
    if outcome.dry_run:
        sys.stdout.write("Dry run: nothing was built, applied or recorded.\nPlan:\n")
        sys.stdout.writelines(f"  - {step}\n" for step in outcome.plan)
        sys.stdout.write(outcome.diff or "No change from the current release.\n")
        return
    release = outcome.release
    assert release is not None
    verb = (
        "is up as the preview (promote it with `autodevhub promote`)"
        if (release.status == "preview")
        else "deployed"
    )
    sys.stdout.write(f"Release {release.id} of {env} {verb}.\n")
    for image in release.images:
        sys.stdout.write(f"  {image['name']:9} {image['ref']}\n")
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in release.timings.items())
    sys.stdout.write(f"  timings: {timings}\n")


def _summarise(env: str, outcome: dict[str, Any], error: str | None) -> None:
    release = outcome.get("release") or {}
    title = f"### autodevhub deploy --env {env}: " + (
        "failed" if error else release.get("status", "")
    )
    parts = [title, f"Release `{release.get('id')}` (commit `{str(release.get('commit'))[:12]}`)"]
    if error:
        parts.append(f"> {error}")
    if outcome.get("restored"):
        parts.append(f"Rolled back to release `{outcome['restored']}`.")
    parts.append(summary.images_table(release.get("images") or []))
    parts.append(summary.smoke_table(outcome.get("smoke")))
    parts.append(f"Timings: {summary.timings_line(release.get('timings') or {})}")
    summary.append("\n\n".join(parts))


def status(
    env: Env,
    output: Output = OutputFormat.text,
    context: KubeContext = None,
    kubeconfig: Kubeconfig = None,
    sets: Sets = None,
    project_dir: ProjectDir = None,
) -> None:
    """Show what runs (live images, replicas, health), the serving release and the last attempt."""
    from autodevhub_cli.core.operate import status as read_status

    state = read_status(env, project_dir, sets or (), _options(context, kubeconfig))
    if output is OutputFormat.json:
        _json(state.to_dict())
        return
    write = sys.stdout.write
    current = state.current
    if current is not None:
        write(
            f"{env}: release {current.id} ({current.status}, {current.finished_at}, commit "
            f"{current.commit[:12]}, by {_who(current.deployed_by)})\n"
        )
        for image in current.images:
            write(f"  {image['name']:9} {image['ref']}\n")
        if current.smoke:
            checks = current.smoke.get("checks", [])
            passed = sum(1 for c in checks if c.get("ok"))
            write(f"  smoke: {passed}/{len(checks)} checks passed\n")
    elif state.removed is not None:
        write(
            f"{env}: taken down (release {state.removed.id} served until `autodevhub down`, "
            f"{state.removed.finished_at}).\n"
        )
    else:
        write(f"{env}: no good release recorded.\n")
    last = state.last
    if last is not None and (current is None or last.id != current.id):
        write(f"  last attempt: {last.id} {last.status}: {last.error or ''}".rstrip() + "\n")
    if not state.workloads:
        write("  nothing of it runs now.\n")
        return
    write(f"  running now ({state.target}):\n")
    for w in state.workloads:
        extra = f"  {w['preview']}" if w.get("preview") else ""
        write(
            f"    {w['workload']:20} {w['state']:8} {w['health'] or '-':10} {w['image']}{extra}\n"
        )


def history(
    env: Env,
    output: Output = OutputFormat.text,
    context: KubeContext = None,
    kubeconfig: Kubeconfig = None,
    sets: Sets = None,
    project_dir: ProjectDir = None,
) -> None:
    """List the releases the target keeps (id, when, commit, status, who, images, --set values)."""
    from autodevhub_cli.core.operate import history as read_history

    where, releases = read_history(env, project_dir, sets or (), _options(context, kubeconfig))
    if output is OutputFormat.json:
        _json({"environment": env, "store": where, "releases": [r.to_dict() for r in releases]})
        return
    write = sys.stdout.write
    if not releases:
        write(f"{env}: no release in {where}.\n")
        return
    write(f"{env}: {len(releases)} release(s) in {where}, oldest first\n")
    for r in releases:
        note = f" (rollback to {r.rollback_of})" if r.rollback_of else ""
        note += f" (restored {r.restored})" if r.restored else ""
        write(
            f"  {r.id}  {r.status:11} {r.created_at}  commit {r.commit[:12]}  by "
            f"{_who(r.deployed_by)}{note}\n"
        )
        for image in r.images:
            ref = str(image.get("ref", "")).rsplit("/", 1)[-1]
            write(f"      {image.get('name', '?'):9} {ref}\n")
        if r.sets:
            write(f"      --set: {' '.join(r.sets)}\n")


def _who(deployed_by: dict[str, str]) -> str:
    if not deployed_by:
        return "?"
    who = f"{deployed_by.get('user', '?')}@{deployed_by.get('host', '?')}"
    return who + (f" ({deployed_by['ci']})" if deployed_by.get("ci") else "")


def rollback(
    env: Env,
    to: Annotated[
        str | None, typer.Option("--to", help="Release id (or prefix); default: the previous one.")
    ] = None,
    timeout: Timeout = 300.0,
    output: Output = OutputFormat.text,
    context: KubeContext = None,
    kubeconfig: Kubeconfig = None,
    force_conflicts: ForceConflicts = False,
    project_dir: ProjectDir = None,
) -> None:
    """Re-apply a recorded good release and verify it with the smoke checks."""
    from autodevhub_cli.core.operate import rollback as run_rollback

    progress = Progress(verbose=False)
    options = _options(context, kubeconfig, force_conflicts)
    with progress.live():
        record, smoke = run_rollback(env, to, project_dir, timeout, progress, options)
    if output is OutputFormat.json:
        _json({"release": record.to_dict(), "smoke": smoke.to_dict(), "ok": True})
        return
    sys.stdout.write(
        f"Rolled back {env} to release {record.rollback_of} (recorded as {record.id}); "
        f"{len(smoke.checks)} smoke checks passed.\n"
    )


def down(
    env: Env,
    volumes: Annotated[
        bool, typer.Option("--volumes", help="Also remove volumes (the data is lost).")
    ] = False,
    context: KubeContext = None,
    kubeconfig: Kubeconfig = None,
    sets: Sets = None,
    project_dir: ProjectDir = None,
) -> None:
    """Remove everything the environment runs (volumes only with --volumes)."""
    from autodevhub_cli.core.operate import down as run_down

    run_down(env, project_dir, volumes, sets or (), _options(context, kubeconfig))
    sys.stdout.write(f"{env}: removed" + (" with its volumes" if volumes else "") + ".\n")


def promote(
    env: Env,
    timeout: Timeout = 300.0,
    output: Output = OutputFormat.text,
    context: KubeContext = None,
    kubeconfig: Kubeconfig = None,
    project_dir: ProjectDir = None,
) -> None:
    """Blue-green: promote the checked preview to active, then smoke-check the active version."""
    from autodevhub_cli.core.deploy import promote as run_promote

    progress = Progress(verbose=False)
    with progress.live():
        release, promoted = run_promote(
            env, project_dir, timeout, _options(context, kubeconfig), progress
        )
    if output is OutputFormat.json:
        _json({"release": release.to_dict(), "promoted": promoted, "ok": True})
        return
    if not promoted:
        sys.stdout.write(f"Release {release.id} of {env} is already active: nothing to promote.\n")
        return
    sys.stdout.write(f"Release {release.id} of {env} promoted and checked.\n")


def diff(
    env: Env,
    context: KubeContext = None,
    kubeconfig: Kubeconfig = None,
    prune: Prune = True,
    images: Images = None,
    sets: Sets = None,
    project_dir: ProjectDir = None,
    exit_code: Annotated[
        bool,
        typer.Option(
            "--exit-code",
            help="Exit 1 when a deploy would change something, 0 when not (as `git diff "
            "--exit-code`); a diff that cannot be made exits 4 (bad input 2).",
        ),
    ] = False,
) -> None:
    """Show what a deploy would change (Kubernetes: server-side dry-run against the cluster)."""
    from autodevhub_cli.core.errors import AutodevhubError
    from autodevhub_cli.core.operate import diff as run_diff

    options = _options(context, kubeconfig, prune=prune)
    try:
        text, notes = run_diff(env, project_dir, sets or (), options, images)
    except AutodevhubError as exc:
        if exit_code and exc.exit_code == 1:
            exc.exit_code = 4  # 1 says "changes found" here: a failed diff is not that
        raise
    for note in notes:
        sys.stderr.write(f"warning: {note}.\n")
    sys.stdout.write(text or "No changes.\n")
    if exit_code and text:
        raise typer.Exit(1)
