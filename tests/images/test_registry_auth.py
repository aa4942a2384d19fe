"""Registry credentials: wrong ones fail clearly and are never printed; right ones push."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.docker

USER, PASSWORD = "deployer", "s3cret-Registry-pw"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory, docker_client: object) -> Iterator[str]:
    """Debian's docker-registry with htpasswd auth on a free 127.0.0.1 port."""
    root = tmp_path_factory.mktemp("auth-registry")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()
    (root / "htpasswd").write_text(f"{USER}:{hashed}\n")
    port = _free_port()
    (root / "config.yml").write_text(
        f"""version: 0.1
log: {{level: warn}}
storage: {{filesystem: {{rootdirectory: {root / "data"}}}}}
http: {{addr: 127.0.0.1:{port}}}
auth:
  htpasswd:
    realm: autodevhub-test
    path: {root / "htpasswd"}
"""
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(root / "config.yml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 401:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        else:
            pytest.fail("the authenticated registry did not start")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _push(project: Path, registry: str, password: str) -> tuple[int, str, str]:
    return run_cli(
        "build",
        "--env",
        "dev",
        "--push",
        "--only",
        "frontend",
        "--output",
        "json",
        "--set",
        f"registry.url={registry}/secure",
        "--project-dir",
        str(project),
        env={"REGISTRY_USERNAME": USER, "REGISTRY_PASSWORD": password},
    )


def test_wrong_credentials(
    build_project: Path, build_env: dict[str, str], auth_registry: str
) -> None:
    code, out, err = _push(build_project, auth_registry, "wrong-password")
    assert code == 1
    assert f"The registry {auth_registry} refused the credentials" in err
    assert "REGISTRY_PASSWORD" in err
    assert "wrong-password" not in out + err


def test_right_credentials_push(
    build_project: Path, build_env: dict[str, str], auth_registry: str
) -> None:
    code, out, err = _push(build_project, auth_registry, PASSWORD)
    assert code == 0, err
    (image,) = json.loads(out)["images"]
    assert image["digest"].startswith("sha256:")
    assert PASSWORD not in out + err
