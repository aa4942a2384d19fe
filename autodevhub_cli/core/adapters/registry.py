"""A Docker registry's HTTP API (v2): does a tag exist, and what is its digest."""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from autodevhub_cli.core.errors import PushError

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("autodevhub.registry")
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


def split_repository(repository: str) -> tuple[str, str]:
    """`host:port/path/name` -> (`host:port`, `path/name`)."""
    host, _, path = repository.partition("/")
    return host, path


def credentials(registry: str) -> dict[str, str] | None:
    """Credentials for `registry`: REGISTRY_USERNAME/REGISTRY_PASSWORD, else the Docker config."""
    user, password = os.environ.get("REGISTRY_USERNAME"), os.environ.get("REGISTRY_PASSWORD")
    if user and password:
        return {"username": user, "password": password, "serveraddress": registry}
    config = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    try:
        auths = json.loads(config.read_text()).get("auths", {})
    except (OSError, ValueError):
        return None
    entry = auths.get(registry) or auths.get(f"https://{registry}") or {}
    if entry.get("auth"):
        user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        return {"username": user, "password": password, "serveraddress": registry}
    return None


def _base_url(host: str) -> str:
    local = host.split(":")[0] in {"localhost", "127.0.0.1", "::1"}
    scheme = os.environ.get("AUTODEVHUB_REGISTRY_SCHEME") or ("http" if local else "https")
    return f"{scheme}://{host}"


def manifest_digest(
    repository: str, tag: str, auth: dict[str, str] | None = None, timeout: float = 5.0
) -> str | None:
    """The digest of `repository:tag` in its registry, or None when the tag is not there."""
    import httpx

    host, name = split_repository(repository)
    url = f"{_base_url(host)}/v2/{name}/manifests/{tag}"
    log.info("registry: HEAD %s", url)
    basic = (auth["username"], auth["password"]) if auth else None
    try:
        response = _head_with_token(url, basic, timeout)
    except httpx.HTTPError as exc:
        raise PushError(
            f"The registry {host} is unreachable ({type(exc).__name__}: {exc}).",
            hint="Start the registry or fix registry.url in the environment file.",
        ) from None
    if response.status_code == 404:
        return None
    if response.status_code in (401, 403):
        raise PushError(
            f"The registry {host} refused the credentials ({response.status_code}).",
            hint="Log in with `docker login`, or set REGISTRY_USERNAME and REGISTRY_PASSWORD.",
        )
    if response.status_code != 200:
        raise PushError(f"The registry {host} answered {response.status_code} for {url}.")
    digest = response.headers.get("Docker-Content-Digest")
    return str(digest) if digest else None


def _head_with_token(url: str, basic: tuple[str, str] | None, timeout: float) -> httpx.Response:
    import httpx

    headers = {"Accept": MANIFEST_TYPES}
    with httpx.Client(timeout=timeout) as client:
        # What `head` sends; `request` is annotated to take auth=None (no credentials).
        response = client.request("HEAD", url, headers=headers, auth=basic)
        challenge = response.headers.get("WWW-Authenticate", "")
        if response.status_code == 401 and challenge.lower().startswith("bearer "):
            # Token auth (Docker Hub, GHCR, Harbor): ask the realm for a pull token.
            fields = dict(
                part.split("=", 1)
                for part in challenge[7:].replace('"', "").split(",")
                if "=" in part
            )
            realm = fields.pop("realm", "")
            token = client.get(realm, params=fields, auth=basic)
            if token.status_code == 200:
                value = token.json().get("token") or token.json().get("access_token")
                headers["Authorization"] = f"Bearer {value}"
                response = client.head(url, headers=headers)
        return response
