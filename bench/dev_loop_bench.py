"""Benchmark: edit a backend route, then time until the new answer is served, three ways.

Usage: python bench/dev_loop_bench.py [--rounds 5]   (needs the Docker engine, the registry on
127.0.0.1:5000 and the stand-in base images from scripts/ci/provision-docker.sh)

On a throwaway copy of the project (its own Compose project names and free ports), each round
rewrites one route of the backend (`GET /api/dev-mark`, added to service/routes/ops.py by the
bench, answering a new mark every round) and polls the backend every 20 ms until the answer
carries the new mark:
- `autodevhub dev --env dev`: the edit is synced (the project's `develop` declarations: the
  service folder mounted over the image's, the backend and worker restarted); the status line's
  own seconds (restart, health, the backend's checks) are reported beside it;
- `autodevhub deploy --env dev` after the same kind of edit (build, push, migrate when its inputs
  changed, recreate, smoke checks): served, and the whole command;
- `docker compose watch` driven by hand on the same files: the dev environment's rendered
  compose file with the backend given `develop.watch` (`sync+restart` of ./service to
  /app/service, ignoring web/ and __pycache__/). Compose's sync copies the files into the
  container as the container's user, which it looks up in the image's passwd: this project's
  images run as a numeric uid with no passwd entry, so the sync fails there ("getent unable to
  find entry"); the by-hand file runs the backend as root (with root's capabilities, the data
  volume belonging to uid 10001) on a writable root filesystem, as a user would have to.

What a run touches: images `127.0.0.1:5000/NAME/autodevhub/{backend,frontend}` (built and
pushed by the tool; removed at the end, never forced) and the registry repositories under NAME
(kept, as deploy_bench's); the Compose projects NAME and NAME-byhand (removed with
`down --volumes`); the release history volumes labelled io.autodevhub.release-store=NAME
(removed); the temporary project copy (removed). NAME is `devbench` and 8 random hex digits.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from bench_common import base_image_env, copy_project, timed
from deploy_bench import REGISTRY, RELEASE_STORE_LABEL, applied_file, docker_lines, free_port

ROUTE = '''

@router.get("/api/dev-mark")
async def dev_mark() -> dict[str, str]:
    """The route bench/dev_loop_bench.py edits."""
    return {"mark": "MARK"}
'''


def set_mark(work: Path, mark: str) -> None:
    ops = work / "service" / "routes" / "ops.py"
    text = ops.read_text()
    if "/api/dev-mark" not in text:
        text += ROUTE
    ops.write_text(re.sub(r'"mark": "[^"]*"', f'"mark": "{mark}"', text))


def served(url: str, mark: str, seconds: float = 120) -> float:
    """Seconds until `url` answers with `mark` (polled every 20 ms)."""
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if json.loads(answer.read()).get("mark") == mark:
                    return time.perf_counter() - started
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    sys.exit(f"{url} never answered mark {mark!r} in {seconds:.0f}s")


def edit_and_serve(work: Path, url: str, mark: str) -> float:
    set_mark(work, mark)
    return served(url, mark)


class DevProcess:
    """`autodevhub dev --env dev` with its stdout read line by line."""

    def __init__(self, cli: list[str], env: dict[str, str], work: Path) -> None:
        self.proc = subprocess.Popen(
            [*cli, "dev", "--env", "dev"],
            env={**env, "NO_COLOR": "1"},
            cwd=work,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.status: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if re.match(r"^\[\d\d:\d\d:\d\d\] dev: ", line):
                self.status.append(line.strip())

    def wait_status(self, words: str, after: int, seconds: float = 300) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for line in self.status[after:]:
                if words in line:
                    return line
            if self.proc.poll() is not None:
                sys.exit(f"autodevhub dev ended: {self.status[-3:]}")
            time.sleep(0.05)
        sys.exit(f"no dev status line with {words!r}: {self.status[-3:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def byhand_file(work: Path, env: dict[str, str], name: str, port: int) -> Path:
    """The compose file the tool applied, as its own project on its own ports, the backend with
    develop.watch (sync+restart), running as root on a writable root filesystem."""
    import yaml

    data = yaml.safe_load(applied_file(work, env))
    data["name"] = f"{name}-byhand"
    for service in data["services"].values():
        service.pop("ports", None)  # the tool's stack holds those
    backend = data["services"]["backend"]
    backend["ports"] = [f"127.0.0.1:{port}:8000"]
    backend["user"] = "root"  # with its capabilities: the volume belongs to uid 10001
    backend["read_only"] = False
    backend.pop("cap_drop", None)
    backend["develop"] = {
        "watch": [
            {
                "action": "sync+restart",
                "path": "./service",
                "target": "/app/service",
                "ignore": ["web/", "__pycache__/"],
            }
        ]
    }
    path = work / "byhand-compose.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def main() -> None:
    from autodevhub_cli.core.adapters.compose import compose_binary

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    work = copy_project("autodevhub-dev-bench-")
    name = f"devbench{uuid.uuid4().hex[:8]}"
    backend_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTODEVHUB__")}
    env.update(base_image_env())
    env.update(
        {
            "AUTODEVHUB__REGISTRY__URL": f"{REGISTRY}/{name}",
            "AUTODEVHUB__COMPOSE__PROJECT_NAME": name,
            "AUTODEVHUB__COMPONENTS__FRONTEND__EXPOSE__COMPOSE__HTTP": str(free_port()),
            "AUTODEVHUB__COMPONENTS__BACKEND__EXPOSE__COMPOSE__HTTP": str(backend_port),
        }
    )
    cli = [str(Path(sysconfig.get_path("scripts")) / "autodevhub")]
    compose = compose_binary()
    url = f"http://127.0.0.1:{backend_port}/api/dev-mark"
    ours, steps, deploy_served, deploy_whole, watch_served = [], [], [], [], []
    dev: DevProcess | None = None
    watcher: subprocess.Popen[str] | None = None
    try:
        set_mark(work, "start")
        dev = DevProcess(cli, env, work)
        dev.wait_status("deployed release", 0)
        served(url, "start")
        for n in range(options.rounds):
            seen = len(dev.status)
            ours.append(edit_and_serve(work, url, f"dev{n}"))
            line = dev.wait_status("service/routes/ops.py changed", seen, 120)
            found = re.search(r" · ([0-9.]+)s", line)
            steps.append(float(found.group(1)) if found else float("nan"))
            time.sleep(1)
        dev.stop()
        dev = None
        for n in range(3):
            set_mark(work, f"deploy{n}")
            result: dict[str, float] = {}
            poll = threading.Thread(
                target=lambda n=n, result=result: result.update(
                    served=served(url, f"deploy{n}", 300)
                )
            )
            poll.start()
            deploy_whole.append(timed([*cli, "deploy", "--env", "dev"], env, work))
            poll.join()
            deploy_served.append(result["served"])
        byhand_port = free_port()
        byhand = byhand_file(work, env, name, byhand_port)
        timed([compose, "-f", str(byhand), "up", "-d", "--wait"], env, work)
        watcher = subprocess.Popen(
            [compose, "-f", str(byhand), "watch", "--no-up"],
            env=env,
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(3)
        byhand_url = f"http://127.0.0.1:{byhand_port}/api/dev-mark"
        for n in range(options.rounds):
            watch_served.append(edit_and_serve(work, byhand_url, f"watch{n}"))
            time.sleep(1)
    finally:
        if dev is not None:
            dev.stop()
        if watcher is not None:
            watcher.terminate()
            watcher.wait()
        clean_up(name, work, env, cli, compose)

    def row(what: str, samples: list[float]) -> None:
        each = ", ".join(f"{s:.2f}" for s in samples)
        print(f"{what:58} {statistics.median(samples):6.2f} s (median of {len(samples)}: {each})")

    row("autodevhub dev: edit -> new answer served", ours)
    row("autodevhub dev: the change's status line (restart, health, checks)", steps)
    row("docker compose watch by hand (sync+restart): edit -> served", watch_served)
    row("autodevhub deploy --env dev after the edit: edit -> served", deploy_served)
    row("autodevhub deploy --env dev after the edit: whole command", deploy_whole)


def clean_up(name: str, work: Path, env: dict[str, str], cli: list[str], compose: str) -> None:
    """Remove what the run made (the module's docstring lists it)."""
    byhand = work / "byhand-compose.yaml"
    if byhand.exists():
        subprocess.run(
            [compose, "-f", str(byhand), "down", "--volumes"], env=env, capture_output=True
        )
    subprocess.run(
        [*cli, "down", "--env", "dev", "--volumes"], env=env, cwd=work, capture_output=True
    )
    refs = docker_lines("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", check=False)
    ours = [r for r in refs if r.startswith(f"{REGISTRY}/{name}/")]
    if ours:
        docker_lines("rmi", *ours, check=False)
    volumes = docker_lines("volume", "ls", "-q", "--filter", f"label={RELEASE_STORE_LABEL}={name}")
    if volumes:
        docker_lines("volume", "rm", *volumes, check=False)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
