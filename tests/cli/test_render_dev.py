"""`autodevhub render --env dev`: a Compose file the real `docker compose config` accepts."""

from __future__ import annotations

import subprocess

import yaml

from autodevhub_cli.core.adapters.compose import compose_binary
from tests.helpers import REPO, run_cli


def test_dev_renders_compose_accepted_by_docker_compose(tmp_path) -> None:
    code, out, err = run_cli("render", "--env", "dev", "--project-dir", str(REPO))
    assert code == 0, err
    compose = yaml.safe_load(out)
    assert compose["name"] == "autodevhub-dev"
    backend, frontend = compose["services"]["backend"], compose["services"]["frontend"]
    assert backend["healthcheck"]["test"][0] == "CMD"
    assert "/readyz" in backend["healthcheck"]["test"][-1]
    assert frontend["depends_on"] == {"backend": {"condition": "service_healthy"}}
    assert frontend["ports"] == ["127.0.0.1:8080:8080"]
    assert "sysctls" not in frontend, "an unprivileged port needs no sysctl"
    assert backend["ports"] == ["127.0.0.1:8000:8000"]
    assert backend["environment"]["DATABASE_URL"].startswith("sqlite:////data/")
    assert "backend-data:/data" in backend["volumes"]
    assert "backend-data" in compose["volumes"]
    assert "ANTHROPIC_API_KEY" not in backend["environment"], "dev runs the offline generator"
    # The real Compose v2 binary, on the file as written to disk.
    path = tmp_path / "compose.yaml"
    path.write_text(out)
    proc = subprocess.run(
        [compose_binary(), "-f", str(path), "config", "--quiet"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_out_writes_one_compose_file(tmp_path) -> None:
    out_dir = tmp_path / "out"
    code, _, err = run_cli(
        "render", "--env", "dev", "--out", str(out_dir), "--project-dir", str(REPO)
    )
    assert code == 0, err
    # and the marker that says autodevhub wrote the folder (no extension: no tool reads it)
    assert sorted(p.name for p in out_dir.iterdir()) == [".autodevhub-render", "compose.yaml"]


def test_kubernetes_target_for_dev(tmp_path) -> None:
    code, out, err = run_cli(
        "render", "--env", "dev", "--target", "kubernetes", "--project-dir", str(REPO)
    )
    assert code == 0, err
    assert "kind: Deployment" in out


def test_a_dollar_in_a_value_reaches_the_container_as_written(tmp_path) -> None:
    """Values are resolved by autodevhub: Compose must not interpolate them again. The real
    `docker compose config` (which interpolates) keeps the value whole, written in its own
    escaped form; the same value unescaped would lose everything after the `$`."""
    import json

    raw = "pa$word${HOME}$$x"
    code, out, err = run_cli(
        "render",
        "--env",
        "dev",
        "--set",
        f"components.backend.env.PASS={raw}",
        "--project-dir",
        str(REPO),
    )
    assert code == 0, err
    path = tmp_path / "compose.yaml"
    path.write_text(out)
    proc = subprocess.run(
        [compose_binary(), "-f", str(path), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(proc.stdout)["services"]["backend"]["environment"]["PASS"]
    assert seen == raw.replace("$", "$$"), seen  # config prints `$` as `$$`: the literal
