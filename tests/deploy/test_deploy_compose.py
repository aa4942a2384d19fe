"""`autodevhub deploy --env dev` end to end on Docker Compose, with its failure paths.

The tests run in order on one stack: a good deploy, a broken one rolled back, a smoke failure
rolled back, the lock, an interrupted deploy, a registry outage, and `down`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import docker
import httpx
import pytest

from tests.deploy.conftest import Stack
from tests.helpers import default_sigint

pytestmark = [pytest.mark.docker, pytest.mark.compose]


def _containers(stack: Stack) -> list[dict]:
    proc = subprocess.run(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            f"label=com.docker.compose.project={stack.name}",
            "--format",
            "{{json .}}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def test_deploy_builds_pushes_applies_and_passes_smoke(stack: Stack) -> None:
    code, out, err = stack.cli("deploy", "--env", "dev", "--output", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["ok"] is True
    release = result["release"]
    assert release["status"] == "deployed"
    assert {i["name"] for i in release["images"]} == {"backend", "worker", "frontend"}
    assert all("@sha256:" in i["ref"] for i in release["images"])
    refs = {i["name"]: i["ref"] for i in release["images"]}
    assert refs["worker"] == refs["backend"], "the worker runs the backend's image"
    assert set(release["timings"]) >= {"build", "render", "tasks", "apply", "smoke"}
    # The checks this project declares (environments/_base.yaml) are the ones that ran, after
    # the probe paths of the components the runner reaches.
    names = [c["name"] for c in result["smoke"]["checks"]]
    assert names == [
        "backend liveness /healthz",
        "backend readiness /readyz",
        "frontend liveness /healthz",
        "frontend page",
        "story round trip",
        "latency p95",
    ]
    assert result["smoke"]["ok"]
    catalog = httpx.get("http://127.0.0.1:5000/v2/_catalog?n=1000").json()["repositories"]
    assert f"{stack.name}/autodevhub/backend" in catalog
    page = httpx.get(f"http://127.0.0.1:{stack.frontend_port}/")
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_status_and_smoke_test(stack: Stack) -> None:
    code, out, err = stack.cli("status", "--env", "dev", "--output", "json")
    assert code == 0, err
    state = json.loads(out)
    assert state["current"]["status"] == "deployed"
    assert {(w["workload"], w["health"]) for w in state["workloads"]} == {
        ("backend", "healthy"),
        ("worker", "healthy"),
        ("frontend", "healthy"),
    }
    code, out, err = stack.cli("smoke-test", "--env", "dev", "--output", "json")
    assert code == 0, err
    assert json.loads(out)["ok"] is True


def test_unchanged_migrations_are_not_run_again(stack: Stack) -> None:
    """A change outside what the task runs with (here a smoke setting) skips it; a change of
    its own component's env, secrets or volumes runs it (tests/deploy/test_new_project.py)."""
    code, _, err = stack.cli(
        "deploy",
        "--env",
        "dev",
        "--skip-build",
        "--set",
        "smoke.timeout_seconds=61",
    )
    assert code == 0, err
    assert "backend.migrate skipped: its inputs are unchanged since release" in err
    release = stack.releases()[-1]
    assert release["status"] == "deployed" and "tasks" not in release["timings"]
    assert release["tasks"] == stack.releases()[-2]["tasks"]
    assert list(release["tasks"]) == ["backend.migrate"]


def test_dry_run_touches_nothing(stack: Stack) -> None:
    before = stack.releases()
    code, out, err = stack.cli(
        "deploy", "--env", "dev", "--dry-run", "--set", "components.backend.env.LOG_LEVEL=info"
    )
    assert code == 0, err
    assert "Dry run" in out
    assert "-      LOG_LEVEL: debug" in out and "+      LOG_LEVEL: info" in out
    assert stack.releases() == before


def test_broken_backend_is_rolled_back(stack: Stack) -> None:
    good = stack.releases()[-1]
    code, out, err = stack.cli(
        "deploy",
        "--env",
        "dev",
        "--skip-build",
        "--set",
        "components.backend.probes.readiness.path=/no-such-health-check",
        "--set",
        "compose.health_start_period_seconds=2",
        "--timeout",
        "60",
    )
    assert code == 1, out + err
    assert "did not become healthy" in err
    assert "backend is running/unhealthy" in err
    assert f"Rolled back to release {good['id']}" in err and "passes its smoke checks" in err
    failed = stack.releases()[-1]
    assert failed["status"] == "failed" and failed["restored"] == good["id"]
    code, _, err = stack.cli("smoke-test", "--env", "dev")
    assert code == 0, err


def _container_ids(stack: Stack) -> dict[str, str]:
    """Running container id per Compose service."""
    return {
        c["Names"].removeprefix(f"{stack.name}-").rsplit("-", 1)[0]: c["ID"]
        for c in _containers(stack)
        if c["State"] == "running"
    }


def test_failed_smoke_check_is_rolled_back_with_exit_code_3(stack: Stack) -> None:
    good = [r for r in stack.releases() if r["status"] == "deployed"][-1]
    before = _container_ids(stack)
    code, _, err = stack.cli(
        "deploy",
        "--env",
        "dev",
        "--skip-build",
        "--set",
        "components.backend.env.LOG_LEVEL=warning",
        "--set",
        "smoke.checks=[{name: missing page, component: frontend, path: /api/no-such-route}]",
        "--set",
        "smoke.timeout_seconds=3",
    )
    assert code == 3, err
    assert "missing page" in err and f"Rolled back to release {good['id']}" in err
    # Only the backend changed: the rollback recreated it alone (and built nothing).
    after = _container_ids(stack)
    assert set(after) == set(before) and after["backend"] != before["backend"]
    assert {k: v for k, v in after.items() if k != "backend"} == {
        k: v for k, v in before.items() if k != "backend"
    }
    assert "build:" not in err.replace("build: skipped", "")


def test_second_deploy_is_refused_by_the_lock_on_the_engine(stack: Stack) -> None:
    """The lock is a container on the Docker host, not a file on this machine: a holder in
    another process is named; once that process is gone (SIGKILL: its container stays), the
    next deploy takes the lock over."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from autodevhub_cli.core.adapters.docker_engine import connect; "
            "from autodevhub_cli.core.targets.engine_state import EngineLock; "
            f"EngineLock(connect(), {stack.name!r}).acquire('deploy'); print('held', flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        code, _, err = stack.cli("deploy", "--env", "dev", "--skip-build")
        assert code == 1
        message = " ".join(err.split())
        assert (
            "Another deploy of this environment holds the lock container "
            f"autodevhub-lock.{stack.name}"
        ) in message
        assert f"pid {holder.pid}" in message and "since" in message
    finally:
        holder.kill()
        holder.wait()
    lock = {"name": f"autodevhub-lock.{stack.name}"}
    assert docker.from_env().containers.list(all=True, filters=lock), "the lock should stay"
    code, _, err = stack.cli("deploy", "--env", "dev", "--skip-build")
    assert code == 0, err
    assert not docker.from_env().containers.list(all=True, filters=lock), "given back"


def test_interrupted_deploy_leaves_consistent_records_and_next_deploy_recovers(
    stack: Stack,
) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autodevhub_cli",
            "deploy",
            "--env",
            "dev",
            "--skip-build",
            "--set",
            "components.backend.probes.readiness.path=/never-ready",
            "--set",
            "components.backend.env.LOG_LEVEL=error",
        ],
        env=stack.process_env(),
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "apply: applying" in line:
            break
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, rest
    assert "Interrupted" in rest
    interrupted = stack.releases()[-1]
    assert interrupted["status"] == "interrupted"
    code, _, err = stack.cli("deploy", "--env", "dev", "--skip-build", "-v")
    assert code == 0, err
    assert f"release {interrupted['id']} was left unfinished" in err
    assert [r["status"] for r in stack.releases() if r["id"] == interrupted["id"]] == ["aborted"]
    assert stack.releases()[-1]["status"] == "deployed"


def test_registry_down_fails_clearly_and_records_no_good_release(stack: Stack) -> None:
    good_before = [r["id"] for r in stack.releases() if r["status"] == "deployed"]
    source = stack.root / "service" / "logs.py"
    source.write_text(source.read_text() + "\n# registry-down test\n")
    code, _, err = stack.cli(
        "deploy", "--env", "dev", "--set", "registry.url=127.0.0.1:5999/nowhere"
    )
    assert code == 1
    assert "127.0.0.1:5999" in err and "unreachable" in err
    last = stack.releases()[-1]
    assert last["status"] == "failed"
    assert [r["id"] for r in stack.releases() if r["status"] == "deployed"] == good_before


def test_backup_of_the_compose_volume(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import sqlite3

    folder = tmp_path_factory.mktemp("backups")
    code, out, err = stack.cli("db", "backup", "--env", "dev", "--to", str(folder), "-o", "json")
    assert code == 0, err
    made = json.loads(out)
    assert made["engine"] == "sqlite" and "/_data/" in made["database"]
    with sqlite3.connect(made["path"]) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "story_sets" in tables


def test_compose_secrets_are_files_the_service_reads(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import os
    import stat

    work = tmp_path_factory.mktemp("secrets")
    planted = "key-planted-" + "5b1e" * 6
    extra = {
        "AUTODEVHUB__COMPOSE__SECRETS_DIR": str(work / "store"),
        "AUTODEVHUB__COMPONENTS__BACKEND__SECRET_ENV__API_KEYS__SECRET": "autodevhub-secrets",
        "AUTODEVHUB__COMPONENTS__BACKEND__SECRET_ENV__API_KEYS__KEY": "api-keys",
        "SMOKE_API_KEY": planted,
    }
    values = work / "values.env"
    values.write_text(f"api-keys={planted}\n")
    code, out, err = stack.cli(
        "secrets", "set", "--env", "dev", "--from-file", str(values), env=extra
    )
    assert code == 0, err
    secret_file = work / "store" / stack.name / "autodevhub-secrets" / "api-keys"
    info = secret_file.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == 10001
    assert not str(secret_file).startswith(str(stack.root))
    # The deploy mounts it; the service now requires the key on writes, and the smoke checks send it.
    code, out2, err2 = stack.cli("deploy", "--env", "dev", "--skip-build", env=extra)
    assert code == 0, err2
    base = f"http://127.0.0.1:{stack.frontend_port}"
    refused = httpx.post(f"{base}/api/stories", json={"feature": "Export invoices as PDF"})
    assert refused.status_code == 401
    # Rotation: a new key, the backend restarted, the old key refused.
    new = work / "new"
    new.write_text("key-rotated-" + "9c2d" * 6 + "\n")
    rotated = {**extra, "SMOKE_API_KEY": "key-rotated-" + "9c2d" * 6}
    code, out3, err3 = stack.cli(
        "secrets", "rotate", "--env", "dev", "api-keys", "--from-file", str(new), env=rotated
    )
    assert code == 0, err3
    assert "restarted backend" in out3 and "smoke checks passed" in out3
    old = httpx.post(
        f"{base}/api/stories",
        json={"feature": "Export invoices as PDF"},
        headers={"Authorization": f"Bearer {planted}"},
    )
    assert old.status_code == 401
    texts = [out, err, out2, err2, out3, err3, json.dumps(stack.releases())]
    texts += [
        p.read_text(errors="replace")
        for p in (stack.root / ".autodevhub").rglob("*")
        if p.is_file()
    ]
    assert all(planted not in text for text in texts)
    assert os.access(secret_file, os.R_OK)


def test_rollback_command(stack: Stack) -> None:
    good = [r for r in stack.releases() if r["status"] == "deployed"]
    code, out, err = stack.cli(
        "rollback", "--env", "dev", "--to", good[0]["id"], "--output", "json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["release"]["rollback_of"] == good[0]["id"]
    assert result["smoke"]["ok"] is True


def test_down_leaves_no_container(stack: Stack) -> None:
    assert _containers(stack)
    serving = [r for r in stack.releases() if r["status"] == "deployed"][-1]
    code, _, err = stack.cli("down", "--env", "dev")
    assert code == 0, err
    assert _containers(stack) == []
    # The history stays; status says the environment was taken down, and by which release.
    code, out, err = stack.cli("status", "--env", "dev", "-o", "json")
    state = json.loads(out)
    assert code == 0 and state["current"] is None and state["running"] is False, out
    assert state["removed"]["id"] == serving["id"]
    code, out, err = stack.cli("status", "--env", "dev")
    assert f"taken down (release {serving['id']}" in out and "nothing of it runs" in out
