"""Chaos drills on Docker Compose: the registry killed mid-push and the engine restarted
mid-deploy. Each asserts that nothing is lost: the data volume keeps its rows, the release
records stay whole, the failure is said in one paragraph without a traceback, and the next deploy
works once the component is back.

The engine drill stops and starts the machine's dockerd: the tests run one at a time (as CI runs
them), never beside other Docker work.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.conftest import Stack, free_port

pytestmark = [pytest.mark.docker, pytest.mark.compose]


class Registry:
    """Debian's docker-registry on a port and a storage folder of its own, so it can be killed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        (root / "config.yml").write_text(
            f"version: 0.1\nlog: {{level: warn}}\n"
            f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}}}\n"
            f"http: {{addr: 127.0.0.1:{self.port}}}\n"
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(self.root / "config.yml")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://{self.address}/v2/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("the drill's registry did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed (run bash scripts/ci/provision-docker.sh)")
    made = Registry(tmp_path)
    made.start()
    yield made
    made.kill()


def _deploy(stack: Stack, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "autodevhub_cli", "deploy", "--env", "dev", *args],
        env=stack.process_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_line(proc: subprocess.Popen[str], text: str) -> list[str]:
    """Read the deploy's progress lines up to the first one containing `text`."""
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"the deploy ended before {text!r}:\n{''.join(seen)}")


def _story(stack: Stack) -> str:
    """A story set made through the running release, done, for the drill to find again."""
    base = f"http://127.0.0.1:{stack.backend_port}"
    created = httpx.post(f"{base}/api/stories", json={"feature": "Kept through chaos"}, timeout=10)
    assert created.status_code == 202, created.text
    story_id = str(created.json()["id"])
    deadline = time.monotonic() + 30
    while httpx.get(f"{base}/api/stories/{story_id}", timeout=5).json()["status"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return story_id


def _still_there(stack: Stack, story_id: str, within: float = 60) -> None:
    """The story set answers 200, done, through the frontend (nginx to the backend)."""
    url = f"http://127.0.0.1:{stack.frontend_port}/api/stories/{story_id}"
    deadline = time.monotonic() + within
    while True:
        try:
            answer = httpx.get(url, timeout=5)
            if answer.status_code == 200:
                assert answer.json()["status"] == "done"
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} never answered 200"
        time.sleep(0.5)


def _records_whole(stack: Stack) -> list[dict]:
    """The history the Docker host keeps (every record readable, or `history` fails)."""
    return stack.releases()


def _touch_backend(stack: Stack, note: str) -> None:
    source = stack.root / "service" / "logs.py"
    source.write_text(source.read_text() + f"\n# {note}\n")


def test_registry_killed_mid_push_rolls_back_and_loses_nothing(
    stack: Stack, registry: Registry
) -> None:
    """Compose pushes while the release starts and is checked; the push must succeed before the
    release counts. Killed mid-push, the deploy rolls back to the release that served, says the
    push failed and names the registry; with the registry back, the next deploy pushes."""
    sets = ("--set", f"registry.url={registry.address}/chaos")
    assert stack.cli("deploy", "--env", "dev", *sets)[0] == 0
    good = _records_whole(stack)[-1]
    assert good["status"] == "deployed"
    story_id = _story(stack)
    # An empty registry, so the push is of every layer, bases included, and lasts long enough to
    # be killed in the middle (a changed backend layer alone can be pushed before the kill).
    registry.kill()
    shutil.rmtree(registry.root / "data")
    registry.start()
    _touch_backend(stack, "registry chaos")
    proc = _deploy(stack, *sets)
    _wait_for_line(proc, "pushing")
    registry.kill()
    assert proc.stderr is not None
    rest = proc.stderr.read()
    code = proc.wait(timeout=240)
    assert code != 0, rest
    assert "Traceback" not in rest
    # Which image's push meets the dead registry first depends on timing: one mid-push ("Pushing
    # <registry>/chaos/<image> failed"), or one still asking the registry whether it has the tag
    # ("The registry <address> is unreachable"). Either way the message names the registry.
    message = " ".join(rest.split())
    assert (
        f"Pushing {registry.address}/chaos/" in message
        or f"The registry {registry.address} is unreachable" in message
    ), rest[-3000:]
    records = _records_whole(stack)
    assert records[-1]["status"] == "failed", records[-1]
    assert next(r for r in records if r["id"] == good["id"])["status"] == "deployed"
    assert f"Rolled back to release {good['id']}" in rest, rest[-3000:]
    _still_there(stack, story_id)
    registry.start()
    code, _, err = stack.cli("deploy", "--env", "dev", *sets)
    assert code == 0, err
    assert _records_whole(stack)[-1]["status"] == "deployed"
    _still_there(stack, story_id)


def _dockerd_pid() -> int | None:
    found = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True)
    pids = found.stdout.split()
    return int(pids[0]) if pids else None


def _start_dockerd() -> None:
    if _dockerd_pid() is None:
        with open("/var/log/dockerd.log", "ab") as log:
            subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 60
    while subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, "dockerd did not come back"
        time.sleep(0.5)


def _stop_dockerd() -> None:
    pid = _dockerd_pid()
    assert pid is not None, "dockerd is not running"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while _dockerd_pid() is not None:
        assert time.monotonic() < deadline, "dockerd did not stop"
        time.sleep(0.2)


@pytest.fixture
def engine_owner() -> Iterator[None]:
    """This drill restarts the machine's dockerd: it must be the one that started it (root)."""
    if os.geteuid() != 0 or _dockerd_pid() is None:
        pytest.skip("restarting the engine needs root and a dockerd started on this machine")
    try:
        yield
    finally:
        _start_dockerd()


def test_engine_restarted_mid_deploy_recovers_and_loses_nothing(
    stack: Stack, engine_owner: None
) -> None:
    """dockerd stopped while `compose up --wait` runs and started again seconds later: the deploy
    ends within its bounds with an honest outcome (the new release healthy, or rolled back to the
    one that served), the records stay whole, the data volume keeps its rows, and the next deploy
    works."""
    assert stack.cli("deploy", "--env", "dev")[0] == 0
    before = _records_whole(stack)
    story_id = _story(stack)
    _touch_backend(stack, "engine chaos")
    proc = _deploy(stack, "--timeout", "90")
    _wait_for_line(proc, "apply: applying")
    time.sleep(1)
    _stop_dockerd()
    time.sleep(2)
    _start_dockerd()
    assert proc.stderr is not None
    rest = proc.stderr.read()
    code = proc.wait(timeout=300)
    assert "Traceback" not in rest, rest
    records = _records_whole(stack)
    assert {r["id"]: r for r in records}[before[-1]["id"]]["status"] == "deployed"
    last = records[-1]
    if code == 0:
        assert last["status"] == "deployed", last
    else:
        assert last["status"] == "failed", (code, last, rest)
        assert "rolled back" in rest.lower() or "roll back" in rest.lower(), rest[-3000:]
    _still_there(stack, story_id, within=120)
    code, _, err = stack.cli("deploy", "--env", "dev")
    assert code == 0, err
    _still_there(stack, story_id)
