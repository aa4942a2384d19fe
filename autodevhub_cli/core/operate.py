"""Day-2 operations on a deployed environment: smoke-test, status, rollback, down."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodevhub_cli.core import releases as states
from autodevhub_cli.core.build import git_commit
from autodevhub_cli.core.deploy import Reporter, open_context, reapply
from autodevhub_cli.core.errors import ConfigError, SmokeCheckError
from autodevhub_cli.core.pipeline import RenderRequest, render_environment
from autodevhub_cli.core.releases import Release
from autodevhub_cli.core.smoke import SmokeResult, run_smoke_checks
from autodevhub_cli.core.targets import TargetOptions


def smoke_test(
    environment: str,
    project_dir: Any = None,
    sets: Sequence[str] = (),
    urls: Sequence[str] = (),
    timeout: float | None = None,
    report: Reporter | None = None,
) -> SmokeResult:
    """Run the environment's smoke checks against what is deployed; `urls` (NAME=URL) say
    where to reach components, over the environment's `smoke.urls`."""
    ctx = open_context(environment, project_dir, [*sets, *url_overrides(urls)], None)
    with ctx.target.smoke_endpoints(ctx.environment, False) as endpoints:
        return run_smoke_checks(ctx.environment, endpoints, report, timeout)


def url_overrides(urls: Sequence[str]) -> list[str]:
    """`--url NAME=URL` options as `--set smoke.urls.NAME=URL` expressions."""
    out = []
    for pair in urls:
        name, sep, url = pair.partition("=")
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"--url {pair!r} is not NAME=URL.",
                hint="Name a component and its URL, such as --url web=http://127.0.0.1:8080.",
            )
        out.append(f"smoke.urls.{name}={json.dumps(url)}")
    return out


@dataclass
class Status:
    """The environment now: current release, its images and checks, the running workloads."""

    environment: str
    target: str
    current: Release | None
    last: Release | None
    workloads: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "environment": self.environment,
            "target": self.target,
            "current": self.current.to_dict() if self.current else None,
            "last_attempt": self.last.to_dict() if self.last else None,
            "workloads": self.workloads,
        }


def status(
    environment: str,
    project_dir: Any = None,
    sets: Sequence[str] = (),
    options: TargetOptions | None = None,
) -> Status:
    """Current release, images, workload health and last smoke result."""
    ctx = open_context(environment, project_dir, sets, None, options)
    releases = ctx.store.all()
    current = ctx.store.current()
    workloads: list[dict[str, Any]] = []
    if current is not None:
        path = ctx.store.rendered_path(current, ctx.target.rendered_filename)
        if path.exists():
            workloads = ctx.target.workloads(path)
    return Status(
        ctx.environment.name,
        ctx.target.name,
        current,
        releases[-1] if releases else None,
        workloads,
    )


def rollback(
    environment: str,
    to: str | None = None,
    project_dir: Any = None,
    timeout: float = 300.0,
    report: Reporter | None = None,
    options: TargetOptions | None = None,
) -> tuple[Release, SmokeResult]:
    """Re-apply a recorded good release (default: the one before the current) and verify it."""
    ctx = open_context(environment, project_dir, (), report, options)
    with ctx.target.lock(ctx.project, "rollback"):
        good = [r for r in ctx.store.all() if r.status == states.DEPLOYED]
        if to is not None:
            target_release = ctx.store.get(to)
            if target_release.status != states.DEPLOYED:
                raise ConfigError(
                    f"Release {target_release.id} is {target_release.status}, not a good release.",
                    hint="Roll back to a release whose status is deployed (`autodevhub status`).",
                )
        else:
            if not good:
                raise ConfigError(
                    f"Environment {ctx.environment.name!r} has no good release to roll back to."
                )
            serving = _rendered(ctx, good[-1])
            older = [r for r in good[:-1] if _rendered(ctx, r) != serving]
            if not older:
                raise ConfigError(
                    f"Environment {ctx.environment.name!r} has no earlier good release that "
                    "differs from the one serving.",
                    hint="Name one with --to RELEASE (`autodevhub status` lists them).",
                )
            target_release = older[-1]
        record = ctx.store.new(ctx.target.name, git_commit(ctx.project.root))
        record.rollback_of = target_release.id
        record.images = target_release.images
        ctx.store.attach(record, ctx.target.rendered_filename, _rendered(ctx, target_release))
        ctx.say("rollback", f"re-applying release {target_release.id}")
        try:
            smoke = reapply(ctx, record, timeout)
        except BaseException as exc:
            record.status = states.FAILED
            record.error = str(exc) or type(exc).__name__
            ctx.store.save(record)
            raise
        record.smoke = smoke.to_dict()
        record.status = states.DEPLOYED if smoke.ok else states.FAILED
        ctx.store.save(record)
        if not smoke.ok:
            raise SmokeCheckError(
                f"Rolled back to release {target_release.id}, but its smoke checks fail: "
                f"{smoke.summary()}"
            )
        return record, smoke


def _rendered(ctx: Any, release: Release) -> str:
    path: Path = ctx.store.rendered_path(release, ctx.target.rendered_filename)
    return path.read_text() if path.exists() else ""


def down(
    environment: str,
    project_dir: Any = None,
    volumes: bool = False,
    sets: Sequence[str] = (),
    options: TargetOptions | None = None,
) -> None:
    """Remove everything the environment runs (its volumes only when asked)."""
    ctx = open_context(environment, project_dir, sets, None, options)
    with ctx.target.lock(ctx.project, "down"):
        current = ctx.store.current()
        if current is None:
            every = ctx.store.all()
            current = every[-1] if every else None
        path = ctx.store.rendered_path(current, ctx.target.rendered_filename) if current else None
        if path is not None and path.exists():
            ctx.target.remove(path, volumes)
            return
        # Nothing recorded: render the environment as it is now, for its project name.
        rendered = render_environment(
            RenderRequest(ctx.environment.name, ctx.project.root, sets=sets, validate=False)
        )
        with tempfile.TemporaryDirectory() as folder:
            temp = Path(folder) / ctx.target.rendered_filename
            temp.write_text(rendered.result.to_yaml())
            ctx.target.remove(temp, volumes)


def diff(
    environment: str,
    project_dir: Any = None,
    sets: Sequence[str] = (),
    options: TargetOptions | None = None,
) -> str:
    """What a deploy would change, as a unified diff (Kubernetes: server-side dry-run)."""
    from autodevhub_cli.core.deploy import DeployRequest, preview_changes

    ctx = open_context(environment, project_dir, sets, None, options)
    request = DeployRequest(environment, project_dir, sets, skip_build=True, dry_run=True)
    return preview_changes(ctx, request).diff
