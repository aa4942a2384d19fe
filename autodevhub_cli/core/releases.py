"""Release records: what was deployed, when, by whom, from which commit and `--set` values, with
which images and result, and the exact files it applied.

The records live with the target, as Helm keeps its releases in the release's namespace: every
target hands the store a `ReleaseDriver` (Secrets in the environment's namespace; a volume on
the Docker host of the Compose project), so a fresh CI runner or a teammate's clone sees the
same history, rolls back to the same releases and skips the same tasks. A release is stored
whole (its record and the files it applied: rendered output, the values it was checked with,
the images it ran), gzip'd JSON with a format number. `.autodevhub/` is never the truth: it is
read only once, to import the records an earlier version of autodevhub kept there.
"""

from __future__ import annotations

import calendar
import contextlib
import gzip
import json
import os
import secrets
import shutil
import tempfile
import time
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from autodevhub_cli.core.errors import ConfigError, RecordError, StoreError
from autodevhub_cli.core.lock import user_and_host
from autodevhub_cli.core.records import record_error, write_text_atomically

PENDING = "pending"  # being deployed
DEPLOYED = "deployed"  # passed its checks: a good release
PREVIEW = "preview"  # blue-green: up and checked as the preview, waiting for promotion
FAILED = "failed"  # failed, and the previous release was restored (or there was none)
INTERRUPTED = "interrupted"  # stopped by a signal mid-deploy
ABORTED = "aborted"  # found pending/interrupted by a later deploy (its process is gone)
SUPERSEDED = "superseded"  # was good, then replaced by a rollback to an older release
REMOVED = "removed"  # was serving when `autodevhub down` took the environment down
# Releases that passed their checks: what a rollback may go back to.
GOOD = (DEPLOYED, REMOVED)

# The stored form's version: a reader refuses a newer one rather than guess at it.
FORMAT = 1
DEFAULT_KEEP = 10


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
    # Who ran it: user, host and, in CI, the run's URL.
    deployed_by: dict[str, str] = field(default_factory=dict)
    # The `--set` values it was deployed with, as given.
    sets: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Release:
        """A record as stored (fields this version does not know are left out)."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class StoredRelease:
    """A release as its driver keeps it: the record, the files it applied, and the driver's
    version of the object (for optimistic concurrency)."""

    release: Release
    files: dict[str, str] = field(default_factory=dict)
    version: str | None = None


class ReleaseDriver(Protocol):
    """Where a target keeps the releases of one environment."""

    def describe(self) -> str:
        """Where the records are, for messages (`Secrets ... in namespace staging`)."""

    def object_name(self, release_id: str) -> str:
        """The name of the object holding one release, for messages and `kubectl`/`docker`."""

    def load(self) -> list[StoredRelease]:
        """Every stored release; StoreError naming the object when one cannot be read."""

    def write(self, stored: StoredRelease) -> None:
        """Create or update one release (refused if it changed since it was read)."""

    def delete(self, release_id: str) -> None:
        """Remove one release (gone already is fine)."""


def encode(stored: StoredRelease) -> bytes:
    """The stored form of a release: gzip'd JSON with the format number."""
    document = {"format": FORMAT, "release": stored.release.to_dict(), "files": stored.files}
    return gzip.compress(json.dumps(document, sort_keys=True).encode(), compresslevel=9, mtime=0)


def decode(data: bytes, where: str, remedy: str) -> StoredRelease:
    """A release from its stored form; StoreError naming `where` when it cannot be read."""
    try:
        document = json.loads(gzip.decompress(data))
    except (OSError, EOFError, ValueError) as exc:
        raise StoreError(
            f"The release record in {where} is corrupt ({exc}).",
            hint=f"Nothing was changed. {remedy}",
        ) from None
    version = document.get("format") if isinstance(document, dict) else None
    if isinstance(version, int) and version > FORMAT:
        raise StoreError(
            f"The release record in {where} was written by a newer autodevhub (record format "
            f"{version}; this version reads format {FORMAT}).",
            hint="Upgrade autodevhub (`pip install -U autodevhub`) on this machine; nothing was "
            "changed.",
        )
    record = document.get("release") if version == FORMAT else None
    files = document.get("files") if version == FORMAT else None
    if not isinstance(record, dict) or not isinstance(files, dict) or "id" not in record:
        raise StoreError(
            f"The release record in {where} is not an autodevhub release record.",
            hint=f"Nothing was changed. {remedy}",
        )
    try:
        release = Release.from_dict(record)
    except TypeError as exc:
        raise StoreError(
            f"The release record in {where} misses fields ({exc}).",
            hint=f"Nothing was changed. {remedy}",
        ) from None
    return StoredRelease(release, {str(k): str(v) for k, v in files.items()})


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


def _order(release: Release) -> tuple[int, str]:
    return (_stamp_millis(release.id) or 0, release.id)


def deployer() -> dict[str, str]:
    """Who runs this command: user, host and, in CI, the run."""
    user, host = user_and_host()
    found = {"user": user, "host": host}
    env = os.environ
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        found["ci"] = (
            f"{server}/{env.get('GITHUB_REPOSITORY', '?')}/actions/runs/{env['GITHUB_RUN_ID']}"
        )
    elif env.get("CI_JOB_URL"):  # GitLab
        found["ci"] = env["CI_JOB_URL"]
    elif env.get("BUILD_URL"):  # Jenkins
        found["ci"] = env["BUILD_URL"]
    elif env.get("CI"):
        found["ci"] = "CI"
    return found


def _unrecorded_success(release: Release, where: str) -> str:
    """What a release that runs, but whose record cannot say so, means for the user."""
    how = "as the preview " if release.status == PREVIEW else ""
    return (
        f"Release {release.id} of {release.environment!r} was applied {how}and passed its "
        f"checks, so it runs now, but its record in {where} could not say so: the history will "
        "not match what runs until the next deploy is recorded."
    )


class ReleaseStore:
    """The release history of one environment, kept by its target's driver.

    Reads load every record once (one list call); a command that holds the deploy lock is the
    only writer, so its view stays current as it writes.
    """

    def __init__(self, driver: ReleaseDriver, environment: str, keep: int = DEFAULT_KEEP) -> None:
        self.driver = driver
        self.environment = environment
        self.keep = keep
        self._stored: dict[str, StoredRelease] | None = None
        self._files: Path | None = None

    # --- read ------------------------------------------------------------------------------

    def _load(self) -> dict[str, StoredRelease]:
        if self._stored is None:
            found = self.driver.load()
            self._stored = {s.release.id: s for s in found}
        return self._stored

    def all(self) -> list[Release]:
        """Every release, oldest first."""
        return sorted((s.release for s in self._load().values()), key=_order)

    def get(self, release_id: str) -> Release:
        """The release with this id (or a unique prefix of it)."""
        matches = [r for r in self.all() if r.id.startswith(release_id)]
        if len(matches) != 1:
            known = ", ".join(r.id for r in self.all()[-5:]) or "none"
            raise ConfigError(
                f"No {'unique ' if matches else ''}release {release_id!r} of environment "
                f"{self.environment!r} in {self.driver.describe()}.",
                hint=f"Recent releases: {known} (`autodevhub history --env {self.environment}`).",
            )
        return matches[0]

    def current(self) -> Release | None:
        """The release serving now: the newest good one, unless the environment was taken
        down after it."""
        good = [r for r in self.all() if r.status in GOOD]
        return good[-1] if good and good[-1].status == DEPLOYED else None

    def last_good(self) -> Release | None:
        """The newest release that passed its checks, serving or taken down."""
        good = [r for r in self.all() if r.status in GOOD]
        return good[-1] if good else None

    def text(self, release: Release, filename: str) -> str | None:
        """A file the release applied (its rendered output, values, images), if it has it."""
        stored = self._load().get(release.id)
        return stored.files.get(filename) if stored else None

    def path(self, release: Release, filename: str) -> Path | None:
        """A local copy of a file the release applied, for the tools that read files."""
        text = self.text(release, filename)
        if text is None:
            return None
        return self._materialize(release.id, filename, text)

    def _materialize(self, release_id: str, filename: str, text: str) -> Path:
        """Write a local copy (in a temporary folder of this process, removed with the store);
        RecordError naming the file and its filesystem when there is no room."""
        if self._files is None:
            try:
                self._files = Path(tempfile.mkdtemp(prefix="autodevhub-release-"))
            except OSError as exc:
                raise record_error(
                    Path(tempfile.gettempdir()) / "autodevhub-release-", exc
                ) from None
            weakref.finalize(self, shutil.rmtree, self._files, True)
        path = self._files / release_id / filename
        write_text_atomically(path, text)
        return path

    # --- write -----------------------------------------------------------------------------

    def new(self, target: str, commit: str, sets: Sequence[str] = ()) -> Release:
        """Record a new pending release: the first step of a deploy or rollback, before
        anything is applied. When it cannot be written, nothing is applied."""
        release = Release(
            id=f"{self._next_stamp()}-{secrets.token_hex(3)}",
            environment=self.environment,
            target=target,
            commit=commit,
            created_at=_now(),
            deployed_by=deployer(),
            sets=list(sets),
        )
        stored = StoredRelease(release)
        try:
            self.driver.write(stored)
        except StoreError as exc:
            exc.explain(
                f"Release {release.id} of {self.environment!r} could not be started, so "
                "nothing was applied and the release history is unchanged."
            )
            raise
        self._load()[release.id] = stored
        return release

    def _next_stamp(self) -> str:
        """A millisecond stamp that sorts after every existing release's.

        Ids order the releases, so two deploys in one second, or a clock that stepped back (or
        another runner's clock ahead of this one), must still give the newest the greatest id.
        """
        now = time.time_ns() // 1_000_000
        for known in self._load():
            earlier = _stamp_millis(known)
            if earlier is not None and earlier >= now:
                now = earlier + 1
        seconds, millis = divmod(now, 1000)
        return time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds)) + f"{millis:03d}Z"

    def attach(self, release: Release, filename: str, text: str) -> Path:
        """Keep a file the release applies (written to the store with the next `save`); returns
        a local copy for the tools that read files."""
        self._load()[release.id].files[filename] = text
        try:
            return self._materialize(release.id, filename, text)
        except RecordError as exc:
            exc.explain(
                f"Release {release.id} applies its {filename} from that local copy, so it was "
                "not applied."
            )
            raise

    def save(self, release: Release) -> None:
        """Write the record and its files to the store."""
        if release.status != PENDING and release.finished_at is None:
            release.finished_at = _now()
        stored = self._load()[release.id]
        stored.release = release
        try:
            self.driver.write(stored)
        except StoreError as exc:
            if release.status in (DEPLOYED, PREVIEW):
                exc.explain(_unrecorded_success(release, self.driver.describe()))
            raise

    def add(self, stored: StoredRelease) -> None:
        """Store a release recorded elsewhere (an import), as it is."""
        self.driver.write(stored)
        self._load()[stored.release.id] = stored

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

    def trim(self, *keep: Release) -> list[str]:
        """Delete the oldest records beyond the history limit; never the one serving, the last
        good one, a preview waiting for promotion, or those named. Returns the deleted ids."""
        releases = self.all()
        serving = self.last_good()  # what `current` returns too, unless taken down
        protected = {r.id for r in keep} | ({serving.id} if serving is not None else set())
        protected |= {
            r.id
            for r in releases
            if r.status == PREVIEW and (serving is None or _order(r) > _order(serving))
        }
        excess = len(releases) - self.keep
        deleted = []
        for release in releases:
            if excess <= 0:
                break
            if release.id in protected:
                continue
            self.driver.delete(release.id)
            self._load().pop(release.id, None)
            deleted.append(release.id)
            excess -= 1
        return deleted

    def import_local(self, folder: Path) -> list[Release]:
        """Copy the records an earlier autodevhub kept in `folder` (`<id>/release.json` and the
        files beside it) into the store, then rename the folder `<name>.imported` so it is
        imported once. Only into an empty store: the target's history is the truth."""
        if self.all() or not folder.is_dir():
            return []
        imported = []
        for record_path in sorted(folder.glob("*/release.json")):
            try:
                data = json.loads(record_path.read_text(encoding="utf-8"))
                release = Release.from_dict(data)
                files = {
                    p.name: p.read_text(encoding="utf-8")
                    for p in sorted(record_path.parent.iterdir())
                    if p.is_file() and p.name != "release.json" and not p.name.startswith(".")
                }
            except (OSError, ValueError, TypeError, KeyError, AttributeError):
                # A torn, partial or foreign file (a kill mid-write, a hand edit): not a
                # record; it stays in the renamed folder.
                continue
            self.add(StoredRelease(release, files))
            imported.append(release)
        with contextlib.suppress(OSError):
            folder.rename(folder.with_name(folder.name + ".imported"))
        return sorted(imported, key=_order)
