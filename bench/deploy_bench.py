"""Benchmark: `autodevhub deploy --env dev` on Docker Compose.

Usage: python bench/deploy_bench.py [--kubernetes]   (needs the Docker engine, the registry on
127.0.0.1:5000 and the stand-in base images from scripts/ci/provision-docker.sh; --kubernetes
also the local control plane from scripts/local-cluster.sh)

Measures, on a throwaway copy of the project deployed as its own Compose project:
- cold deploy: the engine's build caches emptied (`docker builder prune -af`, and every image
  but the stand-in bases removed, since the classic builder reuses any local image with the same
  parent and instruction: destructive, run it on a bench machine), nothing of this project in
  the registry, the stack down; `autodevhub deploy --env dev` against
  `docker compose up --build --wait` by hand from the same state (both use the host's wheel cache,
  which the by-hand build context needs too), alternating, `--cold-rounds` of each;
- deploy after one backend source change (build, push, migrate, up --wait, smoke), against
  `docker compose up --build --wait` by hand on the same Dockerfiles after the same kind of
  change (the same engine and layer cache; no push, no migration step, no smoke checks);
- a deploy when nothing changed (build skipped by content tag, Compose has nothing to do);
- a deploy whose smoke check fails, back to a healthy previous release (the whole command): the
  release is up and its checked path answers the same 404 every time, with the default 60 s
  smoke deadline; the check fails after `smoke.confirm_attempts` identical answers;
- a bad release: a real bug in the backend's list endpoint (`GET /api/stories` answers 500 while
  `/healthz` and `/readyz` pass), built and deployed with the project's own smoke checks. Timed
  from the start of `autodevhub deploy` to the first 200 from `GET /api/stories` through the
  frontend after the 500s (the good release serving again), and to the end of the command (the
  restored release checked again). A poller asks every 50 ms.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sysconfig
import threading
import time
import uuid
from pathlib import Path

from bench_common import BASES, base_image_env, copy_project, timed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def touch_backend(work: Path, note: str) -> None:
    source = work / "service" / "logs.py"
    source.write_text(source.read_text() + f"\n# {note}\n")


def break_list_endpoint(work: Path) -> None:
    """The bad release: GET /api/stories raises, every other route works."""
    source = work / "service" / "routes" / "stories.py"
    text = source.read_text()
    marker = '    """A page of story sets, optionally filtered by text in feature, context or persona."""\n'  # noqa: E501
    assert marker in text, "the list endpoint moved; update the bench"
    source.write_text(
        text.replace(marker, marker + '    raise RuntimeError("bench: a bad release")\n')
    )


def bad_release(
    work: Path, env: dict[str, str], cli: list[str], url: str
) -> tuple[float, float | None]:
    """(whole command, first 200 after the 500s) in seconds from the start of the deploy."""
    source = work / "service" / "routes" / "stories.py"
    good = source.read_text()
    break_list_endpoint(work)
    seen: dict[str, float] = {}
    stop = threading.Event()

    def poll(start: float) -> None:
        import httpx

        with httpx.Client(timeout=2) as client:
            while not stop.is_set():
                try:
                    status = client.get(url).status_code
                except httpx.HTTPError:
                    status = 0
                now = time.perf_counter() - start
                if status == 500:
                    seen.setdefault("bad", now)
                elif status == 200 and "bad" in seen:
                    seen.setdefault("good", now)
                    return
                time.sleep(0.05)

    start = time.perf_counter()
    poller = threading.Thread(target=poll, args=(start,), daemon=True)
    poller.start()
    try:
        total = timed([*cli, "deploy", "--env", "dev"], env, work, expect=3)
    finally:
        stop.set()
        poller.join(5)
        source.write_text(good)
    return total, seen.get("good")


def baseline_compose(work: Path, name: str, env: dict[str, str]) -> Path:
    """The dev Compose file with `build:` sections instead of pushed images."""
    import yaml

    script = Path(sysconfig.get_path("scripts")) / "autodevhub"
    rendered = subprocess.run(
        [str(script), "render", "--env", "dev", "--no-validate"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    compose = yaml.safe_load(rendered)
    compose["name"] = f"{name}-byhand"
    from autodevhub_cli.core import wheelhouse

    wheels = wheelhouse.prepare(work / "service" / "requirements.lock", wheelhouse.cache_root())
    context = work / "byhand-context"
    shutil.rmtree(context, ignore_errors=True)
    shutil.copytree(
        work / "service", context / "service", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(wheels, context / "wheelhouse")
    args = {f"{k}_IMAGE": v for k, v in BASES.items()}
    for service, dockerfile in (
        ("backend", "service/Dockerfile"),
        ("frontend", "service/web/Dockerfile"),
    ):
        compose["services"][service]["image"] = f"{name}-byhand-{service}:latest"
        compose["services"][service]["build"] = {
            "context": str(context),
            "dockerfile": dockerfile,
            "args": args,
        }
    # The worker runs the backend's image, built here by the backend service.
    compose["services"]["worker"]["image"] = compose["services"]["backend"]["image"]
    compose["services"]["worker"]["pull_policy"] = "never"
    for service in ("frontend", "backend"):  # free host ports, the rendered container ports
        container_port = compose["services"][service]["ports"][0].rsplit(":", 1)[1]
        compose["services"][service]["ports"] = [f"127.0.0.1:{free_port()}:{container_port}"]
    path = work / "byhand-compose.yaml"
    path.write_text(yaml.safe_dump(compose, sort_keys=False))
    return path


def empty_build_caches() -> None:
    """Forget every layer a build could reuse: BuildKit's cache, and for the classic builder
    (which reuses any local image with the same parent and instruction) every image but the
    stand-in base images. Destructive for this engine's images: run it on a bench machine."""
    keep = set(BASES.values())
    listed = subprocess.run(
        ["docker", "images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    kept_ids = {line.split()[0] for line in listed if line.split()[1] in keep}
    doomed = sorted({line.split()[0] for line in listed} - kept_ids)
    if doomed:
        subprocess.run(["docker", "rmi", "-f", *doomed], capture_output=True)
    subprocess.run(["docker", "builder", "prune", "-af"], capture_output=True, check=True)


def cold_rounds(
    work: Path, name: str, env: dict[str, str], cli: list[str], compose: str, rounds: int
) -> tuple[list[float], list[float]]:
    """(by hand, autodevhub) wall times of cold deploys, each from empty caches."""
    hand, tool = [], []
    byhand = baseline_compose(work, name, env)
    for round_ in range(rounds):
        empty_build_caches()
        hand.append(timed([compose, "-f", str(byhand), "up", "--build", "-d", "--wait"], env, work))
        timed([compose, "-f", str(byhand), "down", "--volumes"], env, work)
        empty_build_caches()
        # A registry prefix of its own each round, so no content tag is already pushed.
        cold_env = {**env, "AUTODEVHUB__REGISTRY__URL": f"127.0.0.1:5000/{name}-cold{round_}"}
        tool.append(timed([*cli, "deploy", "--env", "dev"], cold_env, work))
        timed([*cli, "down", "--env", "dev", "--volumes"], cold_env, work)
        shutil.rmtree(work / ".autodevhub", ignore_errors=True)
    return hand, tool


def main() -> None:
    import argparse

    from autodevhub_cli.core.adapters.compose import compose_binary

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-rounds", type=int, default=2, help="0 skips the cold case")
    parser.add_argument(
        "--only-bad-release", action="store_true", help="first deploy, then the bad release only"
    )
    parser.add_argument(
        "--kubernetes",
        action="store_true",
        help="then the same recovery on the local control plane (bench/kube_rollback_bench.py)",
    )
    parser.add_argument("--kube-rounds", type=int, default=3, help="rounds of each Kubernetes case")
    options = parser.parse_args()
    work = copy_project("autodevhub-deploy-bench-")
    name = f"bench{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTODEVHUB__")}
    env.update(base_image_env())
    env.update(
        {
            "AUTODEVHUB__REGISTRY__URL": f"127.0.0.1:5000/{name}",
            "AUTODEVHUB__COMPOSE__PROJECT_NAME": name,
            "AUTODEVHUB__COMPONENTS__FRONTEND__EXPOSE__COMPOSE__HTTP": str(free_port()),
            "AUTODEVHUB__COMPONENTS__BACKEND__EXPOSE__COMPOSE__HTTP": str(free_port()),
        }
    )
    cli = [str(Path(sysconfig.get_path("scripts")) / "autodevhub")]
    compose = compose_binary()
    cold_hand: list[float] = []
    cold_tool: list[float] = []
    try:
        if options.cold_rounds:
            cold_hand, cold_tool = cold_rounds(work, name, env, cli, compose, options.cold_rounds)
        timed([*cli, "deploy", "--env", "dev"], env, work)  # first deploy: everything built
        for_hand, for_tool, noop, failing = [], [], [], 0.0
        if not options.only_bad_release:
            byhand = baseline_compose(work, name, env)
            timed([compose, "-f", str(byhand), "up", "--build", "-d", "--wait"], env, work)
            # The comparison: one backend change, then each way of bringing it up.
            for round_ in range(3):
                touch_backend(work / "byhand-context", f"by hand {round_}")
                for_hand.append(
                    timed([compose, "-f", str(byhand), "up", "--build", "-d", "--wait"], env, work)
                )
                touch_backend(work, f"tool {round_}")
                for_tool.append(timed([*cli, "deploy", "--env", "dev"], env, work))
            timed([compose, "-f", str(byhand), "down", "--volumes"], env, work)
            noop = [timed([*cli, "deploy", "--env", "dev"], env, work) for _ in range(5)]
            failing = timed(
                [
                    *cli,
                    "deploy",
                    "--env",
                    "dev",
                    "--skip-build",
                    "--set",
                    "components.backend.env.LOG_LEVEL=warning",
                    "--set",
                    "smoke.checks=[{name: broken, component: frontend, path: /api/nope}]",
                ],
                env,
                work,
                expect=3,
            )
        frontend = env["AUTODEVHUB__COMPONENTS__FRONTEND__EXPOSE__COMPOSE__HTTP"]
        bad_total, bad_serving = bad_release(
            work, env, cli, f"http://127.0.0.1:{frontend}/api/stories?limit=5"
        )
        steps = release_steps(work, env, cli)
    finally:
        subprocess.run(
            [*cli, "down", "--env", "dev", "--volumes"], env=env, cwd=work, capture_output=True
        )
        shutil.rmtree(work, ignore_errors=True)
    if cold_tool:
        ch, ct = statistics.median(cold_hand), statistics.median(cold_tool)
        runs = ", ".join(f"{h:.1f}/{t:.1f}" for h, t in zip(cold_hand, cold_tool, strict=True))
        print(f"cold: docker compose up --build --wait                 {ch:6.2f} s")
        print(
            f"cold: autodevhub deploy --env dev                      {ct:6.2f} s "
            f"({ct / ch:.2f}x; medians of {len(cold_tool)}; by hand/tool per round: {runs})"
        )
    if not options.only_bad_release:
        print_comparison(for_hand, for_tool, noop, failing)
    serving = f"{bad_serving:6.2f} s" if bad_serving is not None else "never seen"
    print(f"bad release (GET /api/stories 500): good one serving  {serving}")
    print(f"bad release (GET /api/stories 500): whole command      {bad_total:6.2f} s")
    print(f"  steps of the bad release and of its rollback: {steps}")
    if options.kubernetes:
        import kube_rollback_bench

        print("Kubernetes, a failed smoke check (bench/kube_rollback_bench.py):")
        kube_rollback_bench.main(["--rounds", str(options.kube_rounds)])


def release_steps(work: Path, env: dict[str, str], cli: list[str]) -> str:
    """The step timings of the two newest releases (the bad release, the rollback), from the
    history the Docker host keeps."""
    import json

    listed = subprocess.run(
        [*cli, "history", "--env", "dev", "--output", "json"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    )
    parts = []
    for data in json.loads(listed.stdout)["releases"][-2:]:
        timings = ", ".join(f"{k} {v:.1f}" for k, v in data.get("timings", {}).items())
        parts.append(f"{data['status']}: {timings}")
    return "; ".join(parts)


def print_comparison(
    for_hand: list[float], for_tool: list[float], noop: list[float], failing: float
) -> None:
    hand, tool = statistics.median(for_hand), statistics.median(for_tool)
    print(f"one backend change: docker compose up --build --wait   {hand:6.2f} s (median of 3)")
    print(
        f"one backend change: autodevhub deploy --env dev        {tool:6.2f} s "
        f"(median of 3, {tool / hand:.2f}x; adds the push to the registry and smoke checks)"
    )
    print(
        f"nothing changed: autodevhub deploy --env dev           "
        f"{statistics.median(noop):6.2f} s (median of 5)"
    )
    print(f"failed smoke check -> previous release healthy again   {failing:6.2f} s")


if __name__ == "__main__":
    main()
