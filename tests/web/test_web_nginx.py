"""service/web/nginx.conf and docker-entrypoint.sh: what nginx answers, and how the config is filled in."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from web_servers import WEB, nginx_binary

ENTRYPOINT = WEB / "docker-entrypoint.sh"
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "x-frame-options": "DENY",
}


def get(site: str, path: str, **kwargs: object) -> httpx.Response:
    with httpx.Client(base_url=site, timeout=10) as client:
        return client.get(path, **kwargs)  # type: ignore[arg-type]


def assert_security_headers(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value


# nginx is part of the browser test rig (Debian's nginx-light), so these carry the same marker.
@pytest.mark.browser
class TestServing:
    def test_index_is_never_cached_and_secured(self, site: str) -> None:
        r = get(site, "/")
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert r.headers["cache-control"] == "no-cache"
        assert_security_headers(r)
        assert "server" not in r.headers or "/" not in r.headers["server"]  # no version

    def test_client_routes_fall_back_to_the_app(self, site: str) -> None:
        r = get(site, "/stories/abc123")
        assert r.status_code == 200
        assert '<script type="module" src="/assets/app.' in r.text
        assert r.headers["cache-control"] == "no-cache"

    def test_hashed_assets_are_immutable_and_gzipped(self, site: str, dist: Path) -> None:
        name = next((dist / "assets").glob("app.*.js")).name
        r = get(site, f"/assets/{name}", headers={"Accept-Encoding": "gzip"})
        assert r.status_code == 200
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.headers["content-encoding"] == "gzip"
        assert "Accept-Encoding" in r.headers["vary"]
        assert r.headers["content-type"].startswith("application/javascript")
        assert r.content == (dist / "assets" / name).read_bytes()
        assert_security_headers(r)

    def test_a_missing_asset_is_404_not_the_app(self, site: str) -> None:
        r = get(site, "/assets/app.0000000000.js")
        assert r.status_code == 404
        assert "<script" not in r.text

    def test_a_missing_file_outside_assets_is_404_too(self, site: str) -> None:
        for path in ("/favicon.ico", "/robots.txt", "/stories/x/app.js"):
            assert get(site, path).status_code == 404, path

    def test_healthz_is_answered_by_nginx(self, site: str) -> None:
        r = get(site, "/healthz")
        assert (r.status_code, r.text) == (200, "ok\n")

    def test_api_is_proxied_with_its_own_caching(self, site: str) -> None:
        r = get(site, "/api/stories", params={"limit": 1})
        assert r.status_code == 200
        assert set(r.json()) >= {"items", "total", "limit", "offset"}
        assert r.headers.get("cache-control") != "no-cache"  # not forced by nginx

    def test_too_large_body_gets_a_json_413(self, site: str) -> None:
        with httpx.Client(base_url=site, timeout=10) as client:
            r = client.post(
                "/api/stories",
                content=b'{"feature": "' + b"x" * 200_000 + b'"}',
                headers={"Content-Type": "application/json"},
            )
        assert r.status_code == 413
        assert r.json() == {"detail": "Request body too large."}
        assert_security_headers(r)


def run_entrypoint(
    tmp_path: Path, env: dict[str, str], *command: str, shell: str = "sh"
) -> tuple[subprocess.CompletedProcess[str], Path]:
    conf = tmp_path / "nginx.conf"
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NGINX_TEMPLATE": str(WEB / "nginx.conf"),
        "NGINX_CONF": str(conf),
        **env,
    }
    result = subprocess.run(
        [*shell.split(), str(ENTRYPOINT), *(command or ("true",))],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result, conf


SHELLS = [s for s in ("dash", "busybox sh") if shutil.which(s.split()[0])]


@pytest.mark.parametrize("shell", SHELLS)
def test_entrypoint_fills_in_defaults(tmp_path: Path, shell: str) -> None:
    result, conf = run_entrypoint(tmp_path, {}, shell=shell)
    assert result.returncode == 0, result.stderr
    text = conf.read_text()
    assert "listen 8080 default_server;" in text
    assert "server backend:8000;" in text
    assert "root /usr/share/nginx/html;" in text
    assert not any(p in text for p in ("__LISTEN_PORT__;", "__API_UPSTREAM__;", "__WEB_ROOT__;"))


def test_entrypoint_uses_the_environment_and_nginx_accepts_the_result(tmp_path: Path) -> None:
    env = {"LISTEN_PORT": "8081", "API_UPSTREAM": "127.0.0.1:9", "WEB_ROOT": str(tmp_path)}
    result, conf = run_entrypoint(tmp_path, env)
    assert result.returncode == 0, result.stderr
    text = conf.read_text()
    assert "listen 8081 default_server;" in text
    assert "server 127.0.0.1:9;" in text
    nginx = nginx_binary()
    if nginx is None:
        pytest.skip("nginx is not installed")
    check = subprocess.run([nginx, "-t", "-c", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"LISTEN_PORT": "http"}, "LISTEN_PORT must be a port number, got 'http'"),
        ({"LISTEN_PORT": "70000"}, "LISTEN_PORT must be 1-65535"),
        ({"API_UPSTREAM": "backend"}, "API_UPSTREAM must be host:port, got 'backend'"),
        ({"API_UPSTREAM": "a|b:1"}, "API_UPSTREAM has characters a host:port cannot have"),
        ({"WEB_ROOT": "html"}, "WEB_ROOT must be an absolute path"),
        ({"WEB_ROOT": "/srv/my site"}, "WEB_ROOT may hold only"),
        ({"NGINX_TEMPLATE": "/nonexistent"}, "config template /nonexistent is not readable"),
    ],
)
@pytest.mark.parametrize("shell", SHELLS)
def test_entrypoint_rejects_bad_settings(
    tmp_path: Path, env: dict[str, str], words: str, shell: str
) -> None:
    result, conf = run_entrypoint(tmp_path, env, shell=shell)
    assert result.returncode == 2
    assert words in result.stderr
    assert not conf.exists()
