"""The state of a Compose environment, kept on the Docker host it runs on, through the engine
API (so a second machine whose DOCKER_HOST points at the same engine sees the same history and
the same lock): the release records and the deploy lock.

Records: each release is a Docker volume named `autodevhub-release.<project>.<env>.<id>.<n>`,
labelled with the store, environment, release id and status; its `io.autodevhub.record` label
holds the gzip'd, base64'd JSON of the record and the files it applied. Labels cannot change, so
an update creates version n+1 and then removes version n (a reader takes the highest version:
creating a volume is atomic, so a kill between the two steps loses nothing). One list call reads
the whole history, and volumes survive `docker system prune` and `compose down --volumes`.

Lock: a container named `autodevhub-lock.<project>`, created and never started (the engine's
names are unique, so creating it is the atomic test-and-set), its labels naming the holder and
command; the holder writes the time into it every ten seconds. A holder that stopped renewing
for the lock's duration, or whose process is gone from this host, is taken over: its container
is removed by id and the name taken again, so two runners taking over at once cannot both win.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import tarfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from autodevhub_cli.core.adapters.docker_engine import (
    EngineConflict,
    EngineError,
    EngineNotFound,
    EngineUnavailable,
    call,
    engine_address,
)
from autodevhub_cli.core.errors import StoreError
from autodevhub_cli.core.lock import (
    DURATION_SECONDS,
    DeployLockedError,
    RenewedLock,
    now,
    parse_stamp,
    pid_alive,
    stamp,
    user_and_host,
)
from autodevhub_cli.core.releases import StoredRelease, decode, encode

if TYPE_CHECKING:
    from docker import DockerClient

T = TypeVar("T")

STORE_LABEL = "io.autodevhub.release-store"
ENV_LABEL = "io.autodevhub.environment"
ID_LABEL = "io.autodevhub.release"
STATUS_LABEL = "io.autodevhub.status"
VERSION_LABEL = "io.autodevhub.version"
RECORD_LABEL = "io.autodevhub.record"
LOCK_LABEL = "io.autodevhub.lock"
# The image of the lock container: an empty filesystem, imported once (nothing is pulled).
LOCK_IMAGE = "autodevhub-lock:v1"
RENEWED_FILE = "renewed"


class EngineReleaseDriver:
    """The releases of one Compose environment, as labelled volumes on its Docker host."""

    def __init__(self, client: DockerClient, project: str, environment: str) -> None:
        self.client = client
        self.project = project
        self.environment = environment
        self._names: dict[str, list[tuple[int, str]]] = {}  # release id -> (version, volume)

    def describe(self) -> str:
        """Where the records are."""
        return (
            f"the release volumes of Compose project {self.project!r} on the Docker engine at "
            f"{engine_address()}"
        )

    def object_name(self, release_id: str) -> str:
        """The volume name of a release, without its version."""
        return f"autodevhub-release.{self.project}.{self.environment}.{release_id}"

    def _remedy(self, name: str) -> str:
        return (
            f"Look at it with `docker volume inspect {name}`; remove it (`docker volume rm "
            f"{name}`) to drop that release from the history."
        )

    def load(self) -> list[StoredRelease]:
        """Every release volume of the environment (one list call), newest version of each."""
        filters = {"label": [f"{STORE_LABEL}={self.project}", f"{ENV_LABEL}={self.environment}"]}
        listed = self._call("read", lambda: self.client.api.volumes(filters=filters))
        newest: dict[str, dict[str, Any]] = {}
        self._names.clear()
        for volume in (listed or {}).get("Volumes") or []:
            labels = volume.get("Labels") or {}
            release_id = labels.get(ID_LABEL, "")
            try:
                version = int(labels.get(VERSION_LABEL, ""))
            except ValueError:
                version = 0
            self._names.setdefault(release_id, []).append((version, volume["Name"]))
            best = newest.get(release_id)
            if best is None or version > int((best.get("Labels") or {}).get(VERSION_LABEL, 0)):
                newest[release_id] = volume
        found = []
        for release_id, volume in newest.items():
            name = volume["Name"]
            try:
                data = base64.b64decode((volume.get("Labels") or {}).get(RECORD_LABEL, ""))
            except ValueError:
                data = b""
            stored = decode(data, f"Docker volume {name}", self._remedy(name))
            if stored.release.id != release_id:
                raise StoreError(
                    f"Docker volume {name} is labelled release {release_id!r} but holds the "
                    f"record of {stored.release.id!r}.",
                    hint=f"Nothing was changed. {self._remedy(name)}",
                )
            stored.version = (volume.get("Labels") or {}).get(VERSION_LABEL)
            found.append(stored)
        return found

    def write(self, stored: StoredRelease) -> None:
        """Create the next version of the release's volume, then remove the older ones."""
        release = stored.release
        older = self._names.get(release.id, [])
        version = max((v for v, _ in older), default=0) + 1
        name = f"{self.object_name(release.id)}.{version}"
        record = base64.b64encode(encode(stored)).decode()
        labels = {
            STORE_LABEL: self.project,
            ENV_LABEL: self.environment,
            ID_LABEL: release.id,
            STATUS_LABEL: release.status,
            VERSION_LABEL: str(version),
            RECORD_LABEL: record,
        }
        made = self._call(
            "write",
            lambda: self.client.api.create_volume(name, driver="local", labels=labels),
        )
        if ((made or {}).get("Labels") or {}).get(RECORD_LABEL) != record:
            # The engine hands back an existing volume of that name: someone wrote this
            # version since this command read the history.
            raise StoreError(
                f"Cannot write the release history ({self.describe()}): version {version} of "
                f"release {release.id} was written by someone else since this command read it; "
                "the deploy lock should have prevented that.",
            )
        stored.version = str(version)
        self._names[release.id] = [(version, name)]
        for _, old in older:
            self._remove(old)

    def delete(self, release_id: str) -> None:
        """Remove every version of a release's volume."""
        for _, name in self._names.pop(release_id, []):
            self._remove(name)

    def _remove(self, name: str) -> None:
        try:
            self._call("write", lambda: self.client.api.remove_volume(name))
        except StoreError as exc:
            if not isinstance(exc.__cause__, EngineNotFound):
                raise

    def _call(self, verb: str, action: Callable[[], T]) -> T:
        try:
            return call(f"{verb} the release volumes of {self.project}", action)
        except (EngineError, EngineUnavailable) as exc:
            raise StoreError(
                f"Cannot {verb} the release history ({self.describe()}): {exc.message}",
                hint=exc.hint
                or "Check that the engine answers (`docker volume ls`) and that this user may "
                "use it, then run the command again.",
            ) from exc


class EngineLock(RenewedLock):
    """The deploy lock of a Compose environment: a named container on its Docker host."""

    def __init__(
        self, client: DockerClient, project: str, duration: int = DURATION_SECONDS
    ) -> None:
        self.name = f"autodevhub-lock.{project}"
        super().__init__(f"lock container {self.name}", duration)
        self.client = client
        self.project = project
        self._id: str | None = None

    def acquire(self, command: str) -> None:
        """Create the lock container, or take over a stale one, or raise DeployLockedError."""
        if self._create(command):
            return
        live = self._inspect()
        if live is None:  # given back between the two calls
            if self._create(command):
                return
            live = self._inspect() or {}
        labels = (live.get("Config") or {}).get("Labels") or {}
        stale = self._stale(live, labels)
        if stale is None:
            raise DeployLockedError(
                f"Another {labels.get('io.autodevhub.command', 'deploy')} of this environment "
                f"holds the {self.what} on the Docker engine at {engine_address()}: "
                f"{labels.get('io.autodevhub.holder', '?')}, since "
                f"{labels.get('io.autodevhub.since', '?')}, renewed {self._renewal(live)}.",
                hint=f"Wait for it to finish; a holder that died stops renewing and the lock "
                f"is taken over {self.duration}s after its last renewal.",
            )
        call(f"remove the stale {self.what} ({stale})", lambda: self._remove(live["Id"]))
        if not self._create(command):
            taken = ((self._inspect() or {}).get("Config") or {}).get("Labels") or {}
            raise DeployLockedError(
                f"Another deploy took the {self.what} at the same moment: "
                f"{taken.get('io.autodevhub.holder', '?')}.",
                hint="Wait for it to finish, then deploy again.",
            )

    def _create(self, command: str) -> bool:
        """Create the lock container; False when the name is taken."""
        labels = {
            LOCK_LABEL: self.project,
            "io.autodevhub.holder": self.identity,
            "io.autodevhub.host": user_and_host()[1],
            "io.autodevhub.pid": str(os.getpid()),
            "io.autodevhub.command": command,
            "io.autodevhub.since": stamp(now()),
        }

        def create() -> Any:
            return self.client.api.create_container(
                LOCK_IMAGE,
                command=["/autodevhub-lock"],  # never started
                name=self.name,
                labels=labels,
                network_disabled=True,
            )

        try:
            try:
                made = call(f"create {self.name}", create)
            except EngineNotFound:  # the image: made here once, from an empty filesystem
                _import_lock_image(self.client)
                made = call(f"create {self.name}", create)
        except EngineConflict:
            return False
        self._id = str(made["Id"])
        return True

    def _inspect(self) -> dict[str, Any] | None:
        try:
            return dict(
                call(f"inspect {self.name}", lambda: self.client.api.inspect_container(self.name))
            )
        except EngineNotFound:
            return None

    def _remove(self, container: str) -> None:
        from docker.errors import NotFound

        with contextlib.suppress(NotFound):  # given back already
            self.client.api.remove_container(container, force=True)

    def _renewal(self, live: dict[str, Any]) -> str:
        """When the holder last renewed (its `since` if it never did)."""
        try:
            stream, _ = self.client.api.get_archive(live["Id"], f"/{RENEWED_FILE}")
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
                member = archive.extractfile(RENEWED_FILE)
                if member is not None:
                    return member.read().decode().strip()
        except Exception:  # never renewed, or unreadable: the start counts
            pass
        labels = (live.get("Config") or {}).get("Labels") or {}
        return str(labels.get("io.autodevhub.since", ""))

    def _stale(self, live: dict[str, Any], labels: dict[str, str]) -> str | None:
        """Why the holder is gone (None while it holds the lock)."""
        if labels.get("io.autodevhub.host") == user_and_host()[1]:
            pid = int(labels.get("io.autodevhub.pid") or 0)
            if pid and not pid_alive(pid):
                return f"its process {pid} on this host has ended"
        renewed = parse_stamp(self._renewal(live))
        if renewed is None:
            return "it names no time"
        silent = (now() - renewed).total_seconds()
        if silent >= self.duration:
            return f"not renewed for {silent:.0f}s"
        return None

    def renew(self, command: str) -> None:
        """Write the time into the lock container; a lock that is gone or another's is lost."""
        holder = self.holder()
        if holder != self.identity:
            self.lost = (
                f"{self.what} was deleted while this deploy held it"
                if holder is None
                else f"{self.what} was taken over by {holder}"
            )
            return
        renewed = stamp(now()).encode()
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            info = tarfile.TarInfo(RENEWED_FILE)
            info.size = len(renewed)
            tar.addfile(info, io.BytesIO(renewed))
        assert self._id is not None
        container = self._id
        call(
            f"renew {self.name}",
            lambda: self.client.api.put_archive(container, "/", archive.getvalue()),
        )
        self.renewed()

    def holder(self) -> str | None:
        """Who holds the lock container now (None when there is none)."""
        live = self._inspect()
        if live is None:
            return None
        if live.get("Id") == self._id:
            return self.identity
        labels = (live.get("Config") or {}).get("Labels") or {}
        return str(labels.get("io.autodevhub.holder") or "another deploy")

    def release(self) -> None:
        """Remove the lock container if it is still ours."""
        if self._id is not None:
            container = self._id
            call(f"remove {self.name}", lambda: self._remove(container))
            self._id = None


def _import_lock_image(client: DockerClient) -> None:
    """Import LOCK_IMAGE: an empty filesystem, a few hundred bytes."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("tmp")
        info.type = tarfile.DIRTYPE
        info.mode = 0o1777
        tar.addfile(info)
    repository, tag = LOCK_IMAGE.split(":")
    call(
        f"import {LOCK_IMAGE}",
        lambda: client.api.import_image_from_data(
            archive.getvalue(),
            repository=repository,
            tag=tag,
            changes=[f"LABEL {LOCK_LABEL}=image"],
        ),
    )
