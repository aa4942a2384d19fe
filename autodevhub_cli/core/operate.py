"""Day-2 operations on a deployed environment: smoke-test, status, history, rollback, down,
logs.

Each reads the history the target keeps (never a file on this machine), so any clone or CI
runner sees and uses the same releases."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from autodevhub_cli.core import releases as states
from autodevhub_cli.core.context import (
    ENVIRONMENT_FILE,
    IMAGES_FILE,
    DeployContext,
    Reporter,
    open_context,
    rollback_to,
)
from autodevhub_cli.core.errors import ConfigError, SmokeCheckError
from autodevhub_cli.core.pipeline import RenderRequest, render_environment
from autodevhub_cli.core.releases import Release
from autodevhub_cli.core.smoke import SmokeResult, run_smoke_checks
from autodevhub_cli.core.targets import TargetOptions, Workload

if TYPE_CHECKING:
    from autodevhub_cli.core.logs import LogLine, LogQuery


def smoke_test(
    environment: str,
    project_dir: str | Path | None = None,
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
    """`--url NAME=URL` options as `--set smoke.urls.NAME=URL` expressions. Messages show a URL
    without its userinfo (`user:pass@`)."""
    from urllib.parse import urlsplit

    from autodevhub_cli.core.redact import redact_text

    out = []
    for pair in urls:
        name, sep, url = pair.partition("=")
        shown = redact_text(pair)
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"--url {shown!r} is not NAME=URL.",
                hint="Name a component and its URL, such as --url web=http://127.0.0.1:8080.",
            )
        if not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", name):
            raise ConfigError(
                f"--url {shown!r}: {name!r} is not a component name (lower-case letters, "
                "digits and '-').",
                hint="Name a component and its URL, such as --url web=http://127.0.0.1:8080.",
            )
        try:
            parts = urlsplit(url)
            valid = bool(parts.hostname) and parts.port != 0
        except ValueError:  # a port that is not a number, an unclosed [IPv6 address
            valid = False
        if not valid:
            raise ConfigError(
                f"--url {shown!r}: the URL has no valid host and port.",
                hint="Give a URL such as http://127.0.0.1:8080 or https://staging.example.com.",
            )
        out.append(f"smoke.urls.{name}={json.dumps(url)}")
    return out


@dataclass
class Status:
    """The environment now: what runs (read from the target), the release serving and the last
    attempt (from the history the target keeps)."""

    environment: str
    target: str
    current: Release | None
    last: Release | None
    workloads: list[Workload]
    # The release `down` took away, when nothing has been deployed since.
    removed: Release | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "environment": self.environment,
            "target": self.target,
            "current": self.current.to_dict() if self.current else None,
            "last_attempt": self.last.to_dict() if self.last else None,
            "removed": self.removed.to_dict() if self.removed else None,
            "running": bool(self.workloads),
            "previews": [w["preview"] for w in self.workloads if w.get("preview")],
            "workloads": self.workloads,
        }


def status(
    environment: str,
    project_dir: str | Path | None = None,
    sets: Sequence[str] = (),
    options: TargetOptions | None = None,
) -> Status:
    """What runs (live images, replicas and health), the serving release and the last attempt."""
    ctx = open_context(environment, project_dir, sets, None, options)
    releases = ctx.store.all()
    current = ctx.store.current()
    last_good = ctx.store.last_good()
    return Status(
        ctx.environment.name,
        ctx.target.name,
        current,
        releases[-1] if releases else None,
        ctx.target.live(),
        removed=last_good if last_good is not None and last_good.status == states.REMOVED else None,
    )


def history(
    environment: str,
    project_dir: str | Path | None = None,
    sets: Sequence[str] = (),
    options: TargetOptions | None = None,
) -> tuple[str, list[Release]]:
    """Every release the target keeps for the environment, oldest first, and where they are."""
    ctx = open_context(environment, project_dir, sets, None, options)
    return ctx.store.driver.describe(), ctx.store.all()


def rollback(
    environment: str,
    to: str | None = None,
    project_dir: str | Path | None = None,
    timeout: float = 300.0,
    report: Reporter | None = None,
    options: TargetOptions | None = None,
) -> tuple[Release, SmokeResult]:
    """Re-apply a recorded good release (default: the newest one that differs from what
    serves) and check it with its own recorded checks."""
    ctx = open_context(environment, project_dir, (), report, options)
    with ctx.target.lock("rollback"):
        chosen = _rollback_target(ctx, to)
        serving = ctx.store.current()
        record = ctx.store.new(ctx.target.name, chosen.commit, chosen.sets)
        record.rollback_of = chosen.id
        record.images = chosen.images
        record.tasks = chosen.tasks
        for filename in (ctx.target.rendered_filename, ENVIRONMENT_FILE, IMAGES_FILE):
            text = ctx.store.text(chosen, filename)
            if text is not None:
                ctx.store.attach(record, filename, text)
        ctx.store.save(record)
        ctx.say("rollback", f"re-applying release {chosen.id}")
        try:
            smoke = rollback_to(ctx, record, timeout, replacing=serving)
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
                f"Rolled back to release {chosen.id}, but its smoke checks fail: {smoke.summary()}"
            )
        return record, smoke


def _rollback_target(ctx: DeployContext, to: str | None) -> Release:
    """The release `rollback` goes back to: the one named, else the newest good one whose
    output differs from what serves."""
    name = ctx.environment.name
    if to is not None:
        chosen = ctx.store.get(to)
        if chosen.status not in states.GOOD:
            raise ConfigError(
                f"Release {chosen.id} is {chosen.status}, not a release that passed its checks.",
                hint=f"Roll back to a release whose status is deployed or removed "
                f"(`autodevhub history --env {name}`).",
            )
        return chosen
    good = [r for r in ctx.store.all() if r.status in states.GOOD]
    if not good:
        raise ConfigError(
            f"Environment {name!r} has no good release to roll back to in "
            f"{ctx.store.driver.describe()}."
        )
    serving = ctx.store.text(good[-1], ctx.target.rendered_filename)
    older = [r for r in good[:-1] if ctx.store.text(r, ctx.target.rendered_filename) != serving]
    if not older:
        raise ConfigError(
            f"Environment {name!r} has no earlier good release that differs from the one serving.",
            hint=f"Name one with --to RELEASE (`autodevhub history --env {name}` lists them).",
        )
    return older[-1]


def down(
    environment: str,
    project_dir: str | Path | None = None,
    volumes: bool = False,
    sets: Sequence[str] = (),
    options: TargetOptions | None = None,
) -> None:
    """Remove everything the environment runs (its volumes only when asked); the history stays,
    and the release that served is marked removed."""
    ctx = open_context(environment, project_dir, sets, None, options)
    with ctx.target.lock("down"):
        current = ctx.store.current()
        every = ctx.store.all()
        recorded = current or (every[-1] if every else None)
        path = ctx.store.path(recorded, ctx.target.rendered_filename) if recorded else None
        if path is not None:
            ctx.target.remove(path, volumes)
        else:
            # Nothing recorded: render the environment as it is now, for its project name.
            rendered = render_environment(
                RenderRequest(
                    environment=ctx.environment.name,
                    project_dir=ctx.project.root,
                    sets=sets,
                    validate=False,
                    loaded=ctx.environment,
                )
            )
            with tempfile.TemporaryDirectory() as folder:
                temp = Path(folder) / ctx.target.rendered_filename
                temp.write_text(rendered.result.to_yaml())
                ctx.target.remove(temp, volumes)
        if current is not None:
            current.status = states.REMOVED
            ctx.store.save(current)


def diff(
    environment: str,
    project_dir: str | Path | None = None,
    sets: Sequence[str] = (),
    options: TargetOptions | None = None,
    images: Path | None = None,
) -> tuple[str, list[str]]:
    """What a deploy would change, as a unified diff (Kubernetes: server-side dry-run), and
    what to know about it (a stale recorded build)."""
    from autodevhub_cli.core.deploy import DeployRequest, preview_changes

    ctx = open_context(environment, project_dir, sets, None, options)
    request = DeployRequest(
        environment=environment,
        project_dir=project_dir,
        sets=sets,
        skip_build=True,
        dry_run=True,
        images=images,
    )
    outcome = preview_changes(ctx, request)
    return outcome.diff, outcome.notes


def logs(
    environment: str,
    project_dir: str | Path | None,
    sets: Sequence[str],
    options: TargetOptions | None,
    query: LogQuery,
    note: Callable[[str], None],
) -> Iterator[LogLine]:
    """The environment's log, read from its target: every replica of the components asked for,
    merged in time order (core.logs.read_logs)."""
    from autodevhub_cli.core.logs import read_logs

    ctx = open_context(environment, project_dir, sets, None, options)
    return read_logs(ctx.target, ctx.environment, query, note)
