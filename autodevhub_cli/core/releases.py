"""Release records: what was deployed, when, from which commit, with which images and result.

Each release lives in `.autodevhub/releases/<env>/<id>/` with `release.json` (written atomically
at every state change) and the rendered output it applied, so `rollback` can re-apply it exactly.
"""

from __future__ import annotations

import calendar
import contextlib
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autodevhub_cli.core.errors import ConfigError, RecordError
from autodevhub_cli.core.project import Project
from autodevhub_cli.core.records import read_json, record_error, write_json, write_text_atomically

PENDING = "pending"  # being deployed
DEPLOYED = "deployed"  # passed its checks: a good release
PREVIEW = "preview"  # blue-green: up and checked as the preview, waiting for promotion
FAILED = "failed"  # failed, and the previous release was restored (or there was none)
INTERRUPTED = "interrupted"  # stopped by a signal mid-deploy
ABORTED = "aborted"  # found pending/interrupted by a later deploy (its process is gone)
SUPERSEDED = "superseded"  # was good, then replaced by a rollback to an older release


@dataclass
class Release:
    """One deploy attempt of an environment."""

    id: str
    environment: str
    target: str
    commit: str
    created_at: str
    status: str = PENDING
    images: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    smoke: dict[str, Any] | None = None
    error: str | None = None
    restored: str | None = None
    rollback_of: str | None = None
    finished_at: str | None = None
    # `component.task` -> fingerprint of the inputs it ran with (see deploy.task_fingerprints)
    tasks: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _stamp_millis(release_id: str) -> int | None:
    """Milliseconds since the epoch of a release id's stamp (`20261127T053736123Z-ab12cd`)."""
    stamp = release_id.split("-", 1)[0]
    try:
        seconds = calendar.timegm(time.strptime(stamp[:15], "%Y%m%dT%H%M%S"))
    except ValueError:
        return None
    millis = stamp[15:18]
    return seconds * 1000 + (int(millis) if millis.isdigit() else 0)


def _unrecorded_success(release: Release, recorded_status: str | None) -> str:
    """What a release that runs, but whose record cannot say so, means for the user."""
    how = "as the preview " if release.status == PREVIEW else ""
    shows = f"still shows it as {recorded_status}" if recorded_status else "is missing"
    return (
        f"Release {release.id} of {release.environment!r} was applied {how}and passed its "
        f"checks, so it runs now, but its record {shows}: the history will not match what "
        "runs until the next deploy is recorded."
    )


def _remove_empty(folder: Path) -> None:
    """Remove a release folder a failed write left empty (a full disk can still do that)."""
    with contextlib.suppress(OSError):
        folder.rmdir()


def _order(path: Path) -> tuple[int, str]:
    """Sort key of a `<id>/release.json`: its stamp in milliseconds, then the id."""
    name = path.parent.name
    return (_stamp_millis(name) or 0, name)


class ReleaseStore:
    """The release records of one environment."""

    def __init__(self, project: Project, environment: str) -> None:
        self.environment = environment
        self.folder = project.state_dir / "releases" / environment

    def new(self, target: str, commit: str) -> Release:
        """Record a new pending release: the first step of a deploy or rollback, before
        anything is applied. When it cannot be written, nothing of it is left behind."""
        release = Release(
            id=f"{self._next_stamp()}-{secrets.token_hex(3)}",
            environment=self.environment,
            target=target,
            commit=commit,
            created_at=_now(),
        )
        folder = self.folder / release.id
        try:
            try:
                folder.mkdir(parents=True)
            except OSError as exc:
                raise record_error(folder, exc) from exc
            self.save(release)
        except RecordError as exc:
            _remove_empty(folder)
            exc.explain(
                f"Release {release.id} of {self.environment!r} could not be started, so "
                "nothing was applied and the release history is unchanged."
            )
            raise
        return release

    def _next_stamp(self) -> str:
        """A millisecond stamp that sorts after every existing release's.

        Ids order the releases (`all`, `current`), so two deploys in one second, or a clock
        that stepped back, must still give the newest release the greatest id.
        """
        now = time.time_ns() // 1_000_000
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                earlier = _stamp_millis(path.name)
                if earlier is not None and earlier >= now:
                    now = earlier + 1
        seconds, millis = divmod(now, 1000)
        return time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds)) + f"{millis:03d}Z"

    def attach(self, release: Release, filename: str, rendered: str) -> Path:
        """Keep the rendered output a release applies, for rollbacks and diffs."""
        path = self.folder / release.id / filename
        try:
            write_text_atomically(path, rendered)
        except RecordError as exc:
            # Every caller keeps the output before applying it, so that a rollback can.
            exc.explain(
                f"Release {release.id} keeps its {filename} before applying it, so it was not "
                "applied."
            )
            raise
        return path

    def save(self, release: Release) -> None:
        """Write the record atomically."""
        if release.status != PENDING and release.finished_at is None:
            release.finished_at = _now()
        path = self.folder / release.id / "release.json"
        try:
            write_json(path, release.to_dict())
        except RecordError as exc:
            if release.status in (DEPLOYED, PREVIEW):
                recorded = read_json(path)
                was = recorded.get("status") if isinstance(recorded, dict) else None
                exc.explain(_unrecorded_success(release, was))
            raise

    def all(self) -> list[Release]:
        """Every release, oldest first."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.glob("*/release.json"), key=_order):
            data = read_json(path)
            if isinstance(data, dict):
                known = {k: v for k, v in data.items() if k in Release.__dataclass_fields__}
                found.append(Release(**known))
        return found

    def get(self, release_id: str) -> Release:
        """The release with this id (or a unique prefix of it)."""
        matches = [r for r in self.all() if r.id.startswith(release_id)]
        if len(matches) != 1:
            known = ", ".join(r.id for r in self.all()[-5:]) or "none"
            raise ConfigError(
                f"No {'unique ' if matches else ''}release {release_id!r} of environment "
                f"{self.environment!r}.",
                hint=f"Recent releases: {known} (`autodevhub status --env {self.environment}`).",
            )
        return matches[0]

    def current(self) -> Release | None:
        """The release now serving: the newest good one."""
        good = [r for r in self.all() if r.status == DEPLOYED]
        return good[-1] if good else None

    def rendered_path(self, release: Release, filename: str) -> Path:
        """Where a release's rendered output is kept."""
        return self.folder / release.id / filename

    def recover(self) -> list[Release]:
        """Mark releases left pending or interrupted by a process that is gone as aborted."""
        recovered = []
        for release in self.all():
            if release.status in (PENDING, INTERRUPTED):
                release.error = (
                    (release.error or "")
                    + (" " if release.error else "")
                    + "the deploy process ended before recording a result"
                )
                release.status = ABORTED
                self.save(release)
                recovered.append(release)
        return recovered
