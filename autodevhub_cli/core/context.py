"""What every command that works on a deployed environment shares: the project, its typed
values, its target and the release history the target keeps; and re-applying a recorded release,
checked with the values it was deployed with (a deploy's automatic rollback, the rollback of an
interrupted deploy and the `rollback` command all go through `rollback_to`); and the prune that
follows a release once it serves.

Light to import: `status` and `history` need nothing of the build or render pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autodevhub_cli.core.config import load_environment
from autodevhub_cli.core.environment import Environment
from autodevhub_cli.core.errors import AutodevhubError, ConfigError
from autodevhub_cli.core.project import Project, find_project
from autodevhub_cli.core.releases import Release, ReleaseStore
from autodevhub_cli.core.targets import Target, TargetOptions, target_for

if TYPE_CHECKING:
    from autodevhub_cli.core.smoke import SmokeResult

ENVIRONMENT_FILE = "environment.json"
IMAGES_FILE = "images.json"
Reporter = Callable[[str, str], None]


@dataclass
class DeployContext:
    """What every deploy-side command works with: project, environment, target, and the release
    history the target keeps (read on first use)."""

    project: Project
    environment: Environment
    target: Target
    say: Reporter
    _store: ReleaseStore | None = None

    @property
    def store(self) -> ReleaseStore:
        """The environment's release history, in the target."""
        if self._store is None:
            self._store = ReleaseStore(
                self.target.release_driver(),
                self.environment.name,
                self.environment.releases.keep,
            )
        return self._store


def open_context(
    name: str,
    project_dir: Any,
    sets: Sequence[str],
    report: Reporter | None,
    options: TargetOptions | None = None,
) -> DeployContext:
    """Load the environment and connect its target (deploy, promote, status, rollback, diff)."""
    project = find_project(project_dir)
    environment = load_environment(project, name, sets)
    say = report or (lambda _step, _message: None)
    return DeployContext(project, environment, target_for(environment, options, say), say)


def rollback_to(
    ctx: DeployContext, release: Release, timeout: float, replacing: Release | None
) -> SmokeResult:
    """Apply a recorded release's exact output again, wait for it, delete what the release it
    replaces (`replacing`: a failed release, or the one serving) had and it lacks, and check it
    with its own recorded values. The one rollback: a failed deploy's, an interrupted deploy's
    and the `rollback` command's."""
    filename = ctx.target.rendered_filename
    path = ctx.store.path(release, filename)
    if path is None:
        raise ConfigError(
            f"Release {release.id} has no recorded {filename} to re-apply "
            f"({ctx.store.driver.object_name(release.id)})."
        )
    ctx.target.apply(path, timeout)
    prune_after(ctx, release, replacing)
    return check(ctx, recorded_environment(ctx, release))


def prune_after(ctx: DeployContext, release: Release, before: Release | None) -> list[str]:
    """Once `release` serves: delete what `before` (the release it replaced) applied and it no
    longer has. A failure leaves the release serving and says what is left to delete."""
    if before is None or before.id == release.id or not ctx.target.prune_enabled:
        return []
    filename = ctx.target.rendered_filename
    rendered, old = ctx.store.path(release, filename), ctx.store.path(before, filename)
    if rendered is None or old is None:
        return []
    try:
        return ctx.target.prune(rendered, old)
    except AutodevhubError as exc:
        ctx.say(
            "prune",
            f"warning: release {release.id} serves, but deleting what release {before.id} had "
            f"and it does not failed: {exc}",
        )
        return []


def recorded_environment(ctx: DeployContext, release: Release) -> Environment:
    """The values a release was deployed with (the current ones for an older record)."""
    from pydantic import ValidationError as PydanticValidationError

    text = ctx.store.text(release, ENVIRONMENT_FILE)
    try:
        if text is not None:
            return Environment.model_validate_json(text)
    except PydanticValidationError:
        pass
    ctx.say(
        "rollback",
        f"release {release.id} has no readable record of its values ({ENVIRONMENT_FILE}): "
        "checking it with the current ones",
    )
    return ctx.environment


def check(ctx: DeployContext, environment: Environment, preview: bool = False) -> SmokeResult:
    """Run the smoke checks of `environment` where the target reaches its components (the
    preview of blue-green ones when `preview`)."""
    from autodevhub_cli.core.smoke import run_smoke_checks

    with ctx.target.smoke_endpoints(environment, preview) as endpoints:
        return run_smoke_checks(
            environment,
            endpoints,
            report=lambda check, message: ctx.say("smoke", f"{check}: {message}"),
        )
