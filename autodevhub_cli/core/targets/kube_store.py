"""Release records as Secrets in the environment's namespace, as Helm's storage driver keeps them.

One Secret per release, of its own type `autodevhub.io/release.v1`, named
`autodevhub.release.v1.<environment>.<id>` and labelled with the environment, the release id and
its status (so `kubectl get secrets -l autodevhub.io/environment=prod -L autodevhub.io/status`
lists the history). Its `release` key holds the gzip'd JSON of the record and the files it
applied. Updates are PUTs with the resourceVersion last read (optimistic concurrency), made
under the deploy Lease.

Size: a Secret holds at most 1 MiB. gzip shrinks a release about six times (this project's prod
release, 47.6 KB of manifests and values, is stored in 7.7 KB); a release whose stored form is
larger than PART_BYTES anyway is split over parts, `<name>.2`, `<name>.3`..., each its own
Secret, which the main Secret lists with the SHA-256 of the whole; so no project is refused for
its size.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

from autodevhub_cli.core.adapters.kube import Conflict, Forbidden, Kube, ObjectRef
from autodevhub_cli.core.errors import ApplyError, StoreError
from autodevhub_cli.core.releases import StoredRelease, decode, encode

SECRET_TYPE = "autodevhub.io/release.v1"
STORE_LABEL = "autodevhub.io/release-store"
ENV_LABEL = "autodevhub.io/environment"
ID_LABEL = "autodevhub.io/release"
STATUS_LABEL = "autodevhub.io/status"
PART_LABEL = "autodevhub.io/part-of"
PARTS_ANNOTATION = "autodevhub.io/parts"
SHA_ANNOTATION = "autodevhub.io/sha256"
# Bytes of stored form per Secret: well under the 1 MiB limit with base64 (x4/3) and metadata.
PART_BYTES = 512 * 1024
T = TypeVar("T")


class KubeReleaseDriver:
    """The releases of one environment, as Secrets in its namespace."""

    def __init__(self, kube: Kube, namespace: str, environment: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.environment = environment
        self._versions: dict[str, str] = {}  # release id -> resourceVersion last seen
        self._parts: dict[str, int] = {}  # release id -> number of Secrets it spans

    def describe(self) -> str:
        """Where the records are."""
        return (
            f"the release Secrets of environment {self.environment!r} in namespace "
            f"{self.namespace!r}"
        )

    def object_name(self, release_id: str) -> str:
        """`autodevhub.release.v1.<env>.<id in lower case>` (a Secret name is lower case)."""
        return f"autodevhub.release.v1.{self.environment}.{release_id.lower()}"

    def _selector(self) -> str:
        return f"{STORE_LABEL}=v1,{ENV_LABEL}={self.environment}"

    def _remedy(self, name: str) -> str:
        return (
            f"Look at it with `kubectl -n {self.namespace} get secret {name} -o yaml`; delete it "
            f"(`kubectl -n {self.namespace} delete secret {name}`) to drop that release from the "
            "history."
        )

    def load(self) -> list[StoredRelease]:
        """Every release Secret of the environment (one list call), parts joined."""
        items = self._call(
            "read", lambda: self.kube.list_objects("v1", "Secret", self.namespace, self._selector())
        )
        mains: list[dict[str, Any]] = []
        parts: dict[str, dict[int, bytes]] = {}
        for item in items:
            meta = item.get("metadata") or {}
            labels = meta.get("labels") or {}
            if PART_LABEL in labels:
                number = int(meta["name"].rsplit(".", 1)[-1])
                parts.setdefault(labels[PART_LABEL], {})[number] = _data(item)
            else:
                mains.append(item)
        found = []
        self._versions.clear()
        for item in mains:
            meta = item["metadata"]
            name = meta["name"]
            where = f"Secret {self.namespace}/{name}"
            annotations = meta.get("annotations") or {}
            count = int(annotations.get(PARTS_ANNOTATION) or 1)
            data = _data(item)
            release_id = (meta.get("labels") or {}).get(ID_LABEL, "")
            if count > 1:
                extra = parts.get(release_id, {})
                data += b"".join(extra.get(n, b"") for n in range(2, count + 1))
                if hashlib.sha256(data).hexdigest() != annotations.get(SHA_ANNOTATION):
                    raise StoreError(
                        f"The release record in {where} spans {count} Secrets, and they do not "
                        "add up to what it was written as (a part is missing or changed).",
                        hint=f"Nothing was changed. {self._remedy(name)}",
                    )
            stored = decode(data, where, self._remedy(name))
            stored.version = meta.get("resourceVersion")
            self._versions[stored.release.id] = str(stored.version)
            self._parts[stored.release.id] = count
            found.append(stored)
        return found

    def write(self, stored: StoredRelease) -> None:
        """Create the release's Secret, or replace it at the version last read."""
        release = stored.release
        data = encode(stored)
        chunks = [data[i : i + PART_BYTES] for i in range(0, len(data), PART_BYTES)] or [b""]
        name = self.object_name(release.id)
        for number, chunk in enumerate(chunks[1:], start=2):
            self._put(self._part(release.id, name, number, chunk), None)
        body = self._secret(release.id, name, release.status, chunks[0])
        if len(chunks) > 1:
            body["metadata"]["annotations"] = {
                PARTS_ANNOTATION: str(len(chunks)),
                SHA_ANNOTATION: hashlib.sha256(data).hexdigest(),
            }
        stored.version = self._put(body, self._versions.get(release.id))
        self._versions[release.id] = stored.version
        for number in range(len(chunks) + 1, self._parts.get(release.id, 1) + 1):
            self._call("write", functools.partial(self.kube.delete, self._part_ref(name, number)))
        self._parts[release.id] = len(chunks)

    def delete(self, release_id: str) -> None:
        """Delete the release's Secret and its parts."""
        name = self.object_name(release_id)
        self._call("write", lambda: self.kube.delete(self._part_ref(name, None)))
        for number in range(2, self._parts.pop(release_id, 1) + 1):
            self._call("write", functools.partial(self.kube.delete, self._part_ref(name, number)))
        self._versions.pop(release_id, None)

    # --- objects --------------------------------------------------------------------------

    def _secret(self, release_id: str, name: str, status: str, chunk: bytes) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": SECRET_TYPE,
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {
                    STORE_LABEL: "v1",
                    ENV_LABEL: self.environment,
                    ID_LABEL: release_id,
                    STATUS_LABEL: status,
                },
            },
            "data": {"release": base64.b64encode(chunk).decode()},
        }

    def _part(self, release_id: str, name: str, number: int, chunk: bytes) -> dict[str, Any]:
        body = self._secret(release_id, f"{name}.{number}", "part", chunk)
        labels = body["metadata"]["labels"]
        labels.pop(STATUS_LABEL)
        labels.pop(ID_LABEL)
        labels[PART_LABEL] = release_id
        return body

    def _part_ref(self, name: str, number: int | None) -> ObjectRef:
        return ObjectRef("v1", "Secret", self.namespace, f"{name}.{number}" if number else name)

    def _put(self, body: dict[str, Any], version: str | None) -> str:
        """Create `body`, or replace it at `version`; the resourceVersion written."""
        ref = ObjectRef.of(body)
        if version is None:
            try:
                made = self._call("write", lambda: self.kube.create(body))
                return str(made["metadata"]["resourceVersion"])
            except StoreError as exc:
                if not isinstance(exc.__cause__, Conflict):
                    raise
                # A part written by an earlier, interrupted attempt: replace it as it is now.
                live = self._call("read", lambda: self.kube.get(ref)) or {}
                version = str((live.get("metadata") or {}).get("resourceVersion") or "")
        body["metadata"]["resourceVersion"] = version
        try:
            written = self._call("write", lambda: self.kube.replace(body))
        except StoreError as exc:
            if isinstance(exc.__cause__, Conflict):
                exc.explain(
                    f"{ref} was changed by someone else since this command read it; the deploy "
                    "lock should have prevented that."
                )
            raise
        return str(written["metadata"]["resourceVersion"])

    def _call(self, verb: str, action: Callable[[], T]) -> T:
        """Run a Kubernetes call; its errors become StoreErrors that say where and what to do."""
        try:
            return action()
        except Forbidden as exc:
            raise StoreError(
                f"Cannot {verb} the release history ({self.describe()}): {exc.message}",
                hint=f"Grant the deploying identity get, list, create, update and delete on "
                f"secrets in namespace {self.namespace!r} (`autodevhub doctor --env "
                f"{self.environment}` lists every permission a deploy needs).",
            ) from exc
        except Conflict as exc:
            raise StoreError(
                f"Cannot {verb} the release history ({self.describe()}): {exc.message}"
            ) from exc
        except ApplyError as exc:
            raise StoreError(
                f"Cannot {verb} the release history ({self.describe()}): {exc.message}",
                hint=exc.hint,
            ) from exc


def _data(item: dict[str, Any]) -> bytes:
    value = (item.get("data") or {}).get("release") or ""
    try:
        return base64.b64decode(value)
    except ValueError:
        return b""
