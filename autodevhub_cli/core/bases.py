"""Base images resolved to what they are, not what they are called.

A tag such as `python:3.11-slim` moves when its publisher patches it; the image a build starts
from is named by an immutable identity instead: the registry digest the engine recorded when it
pulled the image (`python@sha256:...`), or, for an image that never came from a registry (built
or imported here), its local image ID (the digest of its config). That identity is part of the
content tag, so a base that changed makes a new tag and a new build.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from autodevhub_cli.core.errors import BuildError

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class BaseImage:
    """A base image as the environment names it, and the immutable image the engine holds."""

    reference: str  # as written: python:3.11-slim, or name@sha256:...
    field: str  # the environment field (or FROM line) that names it
    image_id: str  # the local image ID (config digest)
    digest: str | None = None  # the registry manifest digest, when the engine knows one
    # os/architecture[/variant] of the image the engine holds: a multi-platform base has one
    # registry (index) digest for every platform, so the platform is part of what it is.
    platform: str = ""

    @property
    def identity(self) -> str:
        """What the content tag hashes: the registry digest, else the local image ID."""
        return self.digest or self.image_id

    @property
    def pinned(self) -> str:
        """The reference a build starts from: `repository@sha256:...` where a digest exists."""
        if self.digest is None:
            return self.reference
        return f"{repository_of(self.reference)}@{self.digest}"

    def to_dict(self) -> dict[str, str | None]:
        """JSON-ready form, for the build record."""
        return {
            "reference": self.reference,
            "field": self.field,
            "digest": self.digest,
            "image_id": self.image_id,
            "platform": self.platform,
            "pinned": self.pinned,
        }


def split_reference(reference: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference; tag and digest may be missing."""
    name, _, digest = reference.partition("@")
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:  # a colon after the last slash is a tag, before it a registry port
        name, tag = name[:colon], name[colon + 1 :]
    return name, tag, digest or None


def is_pinned(reference: str) -> bool:
    """Whether a reference names its image by digest (`name[:tag]@sha256:<64 hex>`)."""
    digest = split_reference(reference)[2]
    return digest is not None and _DIGEST.match(digest) is not None


def repository_of(reference: str) -> str:
    """The repository part of a reference (`python` of `python:3.11-slim`)."""
    return split_reference(reference)[0]


def _familiar(repository: str) -> str:
    # docker.io/library/python and python are the same repository; the engine says `python`.
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if repository.startswith(prefix):
            repository = repository[len(prefix) :]
            break
    if repository.startswith("library/") and repository.count("/") == 1:
        repository = repository[len("library/") :]
    return repository


def registry_digests(reference: str, attrs: dict[str, Any]) -> list[str]:
    """The registry digests the engine recorded for the reference's repository, sorted."""
    wanted = _familiar(repository_of(reference))
    found = []
    for entry in attrs.get("RepoDigests") or []:
        name, _, digest = str(entry).partition("@")
        if _familiar(name) == wanted and _DIGEST.match(digest):
            found.append(digest)
    return sorted(found)


def resolve(reference: str, field: str, attrs: dict[str, Any]) -> BaseImage:
    """The base image `reference` names, from the engine's inspection of it (`attrs`).

    A reference that is already pinned (`name@sha256:...`) must be what the engine holds under
    that name; anything else is resolved to its registry digest, else to its image ID.
    """
    image_id = str(attrs.get("Id") or "")
    if not _DIGEST.match(image_id):
        raise BuildError(
            f"The Docker engine reported no image ID for the base image {reference} ({field}).",
            hint="Check the engine (`docker image inspect " + reference + "`), then build again.",
        )
    digests = registry_digests(reference, attrs)
    platform = "/".join(
        str(attrs[key]) for key in ("Os", "Architecture", "Variant") if attrs.get(key)
    )
    _, _, pinned = split_reference(reference)
    if pinned is None:
        return BaseImage(reference, field, image_id, digests[0] if digests else None, platform)
    if pinned not in digests and pinned != image_id:
        held = ", ".join(digests) or f"no registry digest (image ID {image_id})"
        raise BuildError(
            f"The base image {reference} ({field}) is pinned to {pinned}, but the image the "
            f"Docker engine holds under that name is {held}.",
            hint=f"Pull it again (`docker pull {reference}`) or set {field} to the digest of the "
            "image you mean, then build again.",
        )
    return BaseImage(reference, field, image_id, pinned if pinned in digests else None, platform)
