"""Benchmark: `autodevhub deploy --env dev` on Docker Compose.

Usage: python bench/deploy_bench.py [--cold-rounds N]
[--only-cold | --only-bad-release | --only-noop]
[--kubernetes]   (needs the Docker engine, the registry on 127.0.0.1:5000 and the stand-in base
images from scripts/ci/provision-docker.sh; --kubernetes also the local control plane from
scripts/local-cluster.sh)

Measures, on a throwaway copy of the project deployed as its own Compose project:
- cold deploy: no layer of an earlier build can be reused, nothing of this project in the
  registry, the stack down; `autodevhub deploy --env dev` against
  `docker compose up --build --wait` by hand, alternating, `--cold-rounds` of each (both use the
  host's wheel cache, which the by-hand build context needs too). Every one of these builds
  starts from fresh copies of the stand-in bases: each copy is the stand-in plus one small layer
  holding a file of its own, so its layer chain, and with it every BuildKit cache key (and every
  classic-builder parent) above it, matches nothing built before; Dockerfile steps are never
  cache hits, on either side. Nothing is pruned: the engine's other images and build cache are
  left alone. The tool's one-off probe of the new Python base (kept by image ID, see
  wheelhouse.image_python) runs before its timed deploy, as it would have run once on a user's
  machine, and the by-hand side has no such step;
- deploy after one backend source change (build, push, migrate, up --wait, smoke), against
  `docker compose up --build --wait` by hand on the same Dockerfiles after the same kind of
  change (the same engine and layer cache; no push, no migration step, no smoke checks);
- a deploy when nothing changed (build skipped by content tag, Compose has nothing to do),
  against `docker compose up -d --wait --remove-orphans` on the very file the tool deployed
  (the serving release's compose.yaml, read from the history on the Docker host), alternating,
  5 of each after one more no-op deploy, and the steps of the tool's last no-op release;
- a deploy whose smoke check fails, back to a healthy previous release (the whole command): the
  release is up and its checked path answers the same 404 every time, with the default 60 s
  smoke deadline; the check fails after `smoke.confirm_attempts` identical answers;
- a bad release: a real bug in the backend's list endpoint (`GET /api/stories` answers 500 while
  `/healthz` and `/readyz` pass), built and deployed with the project's own smoke checks. Timed
  from the start of `autodevhub deploy` to the first 200 from `GET /api/stories` through the
  frontend after the 500s (the good release serving again), and to the end of the command (the
  restored release checked again). A poller asks every 50 ms.

What a run touches (NAME is `bench` and 8 random hex digits, new for every run):
- Docker images. Created: the tool's builds `127.0.0.1:5000/NAME/autodevhub/{backend,frontend}`
  (one content tag per source change; the worker runs the backend's) and, cold case,
  `127.0.0.1:5000/NAME-coldR/autodevhub/{backend,frontend}` (round R); the by-hand builds
  `NAME-byhand-{backend,frontend}:latest` (a rebuild leaves the earlier one untagged), labelled
  io.autodevhub.bench=NAME; cold case, the fresh bases `NAME-base/{python,node,nginx}:byhandR`
  and `:toolR` (built with the engine's classic builder from the stand-ins, labelled
  io.autodevhub.bench=NAME; the images built from them inherit that label). Removed: exactly
  these (each cold round's at the end of the round, all of them at the end of the run, also
  after a failure): `docker rmi`, never forced, of every tag under those names, then of the
  images still labelled io.autodevhub.bench=NAME; no other image is removed or untagged (the
  stand-in bases and any image another project tagged stay). `autodevhub-lock:v1` (an empty
  image autodevhub's deploy lock uses, shared by every autodevhub project) is imported by the
  first deploy if the engine lacks it, and kept.
- Docker build cache: the bench's builds add their records to the engine's BuildKit cache, as any
  build does (each cold build a full set of its own, about 250 MB: 500 MB a cold round), and
  the bench removes none of them, nor any other (it never runs `docker builder prune`);
  `docker builder prune` reclaims them once they are unused.
- Containers, networks, volumes: the Compose projects NAME and NAME-byhand (removed with
  `down --volumes`, at the end also after a failure); the containers autodevhub runs and removes
  itself (the migration task, the Python probe, the deploy lock container `autodevhub-lock.NAME`
  while a command runs); the release history volumes `autodevhub-release.NAME.dev.*` (which
  survive `down --volumes`: the bench removes those labelled io.autodevhub.release-store=NAME at
  the end).
- The registry on 127.0.0.1:5000: every tool build is pushed to the repositories
  NAME/autodevhub/{backend,frontend} and NAME-coldR/autodevhub/{backend,frontend}; they are kept
  (the bench deletes nothing from the registry). Nothing is pushed by hand.
- Disk: the throwaway project copy in the temporary folder (removed); in
  $XDG_CACHE_HOME/autodevhub (~/.cache/autodevhub), the wheelhouse for the backend's lock file and
  render-cache entries, as any deploy of this project makes (kept; shared and bounded), and the
  Python probe results of the fresh bases, `image-python/<image id>.json` (removed at the end).
- --kubernetes: then bench/kube_rollback_bench.py runs, on the local control plane (a namespace
  per round, deleted afterwards: see its docstring).
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import sysconfig
import tarfile
import threading
import time
import uuid
from pathlib import Path

from bench_common import BASES, base_image_env, copy_project, timed

REGISTRY = "127.0.0.1:5000"
# On the by-hand builds and the cold case's fresh bases (and so on every image built from those).
BENCH_LABEL = "io.autodevhub.bench"
# The release-history volumes of a Compose project carry its name under this label.
RELEASE_STORE_LABEL = "io.autodevhub.release-store"
# Image IDs of the fresh bases this run made (their Python probe results are removed at the end).
FRESH_BASE_IDS: list[str] = []


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


def baseline_compose(
    work: Path,
    name: str,
    env: dict[str, str],
    bases: dict[str, str] = BASES,
    folder: str = "byhand",
) -> Path:
    """The dev Compose file with `build:` sections instead of pushed images, built from `bases`
    with a context of its own in `work/<folder>-context`."""
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
    context = work / f"{folder}-context"
    shutil.rmtree(context, ignore_errors=True)
    shutil.copytree(
        work / "service", context / "service", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(wheels, context / "wheelhouse")
    args = {f"{k}_IMAGE": v for k, v in bases.items()}
    for service, dockerfile in (
        ("backend", "service/Dockerfile"),
        ("frontend", "service/web/Dockerfile"),
    ):
        compose["services"][service]["image"] = f"{name}-byhand-{service}:latest"
        compose["services"][service]["build"] = {
            "context": str(context),
            "dockerfile": dockerfile,
            "args": args,
            "labels": {BENCH_LABEL: name},  # finds the images a rebuild leaves untagged
        }
    # The worker runs the backend's image, built here by the backend service.
    compose["services"]["worker"]["image"] = compose["services"]["backend"]["image"]
    compose["services"]["worker"]["pull_policy"] = "never"
    for service in ("frontend", "backend"):  # free host ports, the rendered container ports
        container_port = compose["services"][service]["ports"][0].rsplit(":", 1)[1]
        compose["services"][service]["ports"] = [f"127.0.0.1:{free_port()}:{container_port}"]
    path = work / f"{folder}-compose.yaml"
    path.write_text(yaml.safe_dump(compose, sort_keys=False))
    return path


def docker_lines(*args: str, check: bool = True) -> list[str]:
    """The output lines of `docker ARGS`."""
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, check=check)
    return proc.stdout.splitlines()


def fresh_bases(name: str, tag: str) -> dict[str, str]:
    """Copies of the stand-in bases that no build has started from: each is the stand-in plus
    one layer holding a file of its own, so its layer chain is new, and so is every BuildKit
    cache key (and classic-builder parent) of a step above it. Built with the engine's classic
    builder (no BuildKit cache record), tagged `<name>-base/<python|node|nginx>:<tag>`,
    labelled BENCH_LABEL=<name>. A LABEL alone would not do: BuildKit keys an image by its
    layers, not its config."""
    from autodevhub_cli.core.adapters import docker_engine

    client = docker_engine.connect()
    made = {}
    for arg, stand_in in BASES.items():
        ref = f"{name}-base/{arg.lower()}:{tag}"
        files = {
            "Dockerfile": f"FROM {stand_in}\nCOPY marker /etc/autodevhub-bench-base\n",
            "marker": f"{ref} {uuid.uuid4().hex}\n",
        }
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            for filename, text in files.items():
                data = text.encode()
                info = tarfile.TarInfo(filename)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        context.seek(0)
        image, _ = client.images.build(
            fileobj=context,
            custom_context=True,
            tag=ref,
            labels={BENCH_LABEL: name},
            pull=False,
            rm=True,
            forcerm=True,
        )
        FRESH_BASE_IDS.append(image.id)
        made[arg] = ref
    return made


def probe_python(base: str) -> None:
    """Run autodevhub's one-off probe of a base image's Python (kept by image ID), outside
    any timing."""
    from autodevhub_cli.core import wheelhouse
    from autodevhub_cli.core.adapters import docker_engine

    client = docker_engine.connect()
    attrs = docker_engine.inspect_image(client, base)
    assert attrs is not None, f"{base} is gone"
    wheelhouse.image_python(client, attrs["Id"], base, "build.args.PYTHON_IMAGE")


def ours(reference: str, name: str) -> bool:
    """Whether `repository:tag` names an image of this run (see the module's docstring)."""
    return reference.startswith((f"{name}-", f"{REGISTRY}/{name}/", f"{REGISTRY}/{name}-cold"))


def remove_images(name: str) -> None:
    """Remove the images this run made and nothing else: every tag under its names, then the
    images still labelled BENCH_LABEL=<name>. Never forced: an image a container still uses,
    or that also has a tag of someone else's, stays (and is reported)."""
    listed = docker_lines("images", "--format", "{{.Repository}}:{{.Tag}}")
    refs = sorted({ref for ref in listed if ours(ref, name)})
    if refs:
        docker_lines("rmi", *refs, check=False)
    labelled = docker_lines(
        "images", "-a", "-q", "--no-trunc", "--filter", f"label={BENCH_LABEL}={name}"
    )
    if labelled:
        docker_lines("rmi", *sorted(set(labelled)), check=False)
    left = [
        ref
        for ref in docker_lines("images", "--format", "{{.Repository}}:{{.Tag}}")
        if ours(ref, name)
    ]
    left += docker_lines("images", "-a", "-q", "--filter", f"label={BENCH_LABEL}={name}")
    if left:
        print(f"deploy_bench: could not remove {', '.join(left)}", file=sys.stderr)


def clean_up(name: str, work: Path, env: dict[str, str], cli: list[str], compose: str) -> None:
    """Remove what the run made on the engine and the disk (the module's docstring lists it)."""
    subprocess.run(
        [*cli, "down", "--env", "dev", "--volumes"], env=env, cwd=work, capture_output=True
    )
    subprocess.run(
        [compose, "-p", f"{name}-byhand", "down", "--volumes"], env=env, capture_output=True
    )
    remove_images(name)
    volumes = docker_lines("volume", "ls", "-q", "--filter", f"label={RELEASE_STORE_LABEL}={name}")
    if volumes:
        docker_lines("volume", "rm", *volumes, check=False)
    from autodevhub_cli.core.render_cache import cache_home

    for image_id in FRESH_BASE_IDS:
        (cache_home() / "image-python" / f"{image_id.removeprefix('sha256:')}.json").unlink(
            missing_ok=True
        )
    shutil.rmtree(work, ignore_errors=True)


def cold_rounds(
    work: Path, name: str, env: dict[str, str], cli: list[str], compose: str, rounds: int
) -> tuple[list[float], list[float]]:
    """(by hand, autodevhub) wall times of cold deploys, each from fresh bases of its own."""
    hand, tool = [], []
    for round_ in range(rounds):
        bases = fresh_bases(name, f"byhand{round_}")
        byhand = baseline_compose(work, name, env, bases, folder=f"cold{round_}")
        hand.append(timed([compose, "-f", str(byhand), "up", "--build", "-d", "--wait"], env, work))
        timed([compose, "-f", str(byhand), "down", "--volumes"], env, work)
        bases = fresh_bases(name, f"tool{round_}")
        probe_python(bases["PYTHON"])
        # A registry prefix of its own each round, so no content tag is already pushed.
        cold_env = {
            **env,
            **{f"AUTODEVHUB__BUILD__ARGS__{k}_IMAGE": v for k, v in bases.items()},
            "AUTODEVHUB__REGISTRY__URL": f"{REGISTRY}/{name}-cold{round_}",
        }
        tool.append(timed([*cli, "deploy", "--env", "dev"], cold_env, work))
        timed([*cli, "down", "--env", "dev", "--volumes"], cold_env, work)
        shutil.rmtree(work / ".autodevhub", ignore_errors=True)
        remove_images(name)  # this round's: no later build could start from them anyway
    return hand, tool


def main() -> None:
    import argparse

    from autodevhub_cli.core.adapters.compose import compose_binary

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-rounds", type=int, default=2, help="0 skips the cold case")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--only-cold", action="store_true", help="the cold case only")
    only.add_argument(
        "--only-bad-release", action="store_true", help="first deploy, then the bad release only"
    )
    only.add_argument(
        "--only-noop", action="store_true", help="first deploy, then the no-op comparison only"
    )
    parser.add_argument(
        "--kubernetes",
        action="store_true",
        help="then the same recovery on the local control plane (bench/kube_rollback_bench.py)",
    )
    parser.add_argument("--kube-rounds", type=int, default=3, help="rounds of each Kubernetes case")
    options = parser.parse_args()
    if options.only_cold and options.cold_rounds < 1:
        parser.error("--only-cold needs --cold-rounds of 1 or more")
    work = copy_project("autodevhub-deploy-bench-")
    name = f"bench{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTODEVHUB__")}
    env.update(base_image_env())
    env.update(
        {
            "AUTODEVHUB__REGISTRY__URL": f"{REGISTRY}/{name}",
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
        if options.only_cold:
            print_cold(cold_hand, cold_tool)
            return
        timed([*cli, "deploy", "--env", "dev"], env, work)  # first deploy: everything built
        for_hand, for_tool, noop, noop_compose, failing = [], [], [], [], 0.0
        noop_steps = ""
        if not options.only_bad_release:
            if not options.only_noop:
                byhand = baseline_compose(work, name, env)
                up = [compose, "-f", str(byhand), "up", "--build", "-d", "--wait"]
                timed(up, env, work)
                # The comparison: one backend change, then each way of bringing it up.
                for round_ in range(3):
                    touch_backend(work / "byhand-context", f"by hand {round_}")
                    for_hand.append(timed(up, env, work))
                    touch_backend(work, f"tool {round_}")
                    for_tool.append(timed([*cli, "deploy", "--env", "dev"], env, work))
                timed([compose, "-f", str(byhand), "down", "--volumes"], env, work)
            # Nothing changed, each way: the tool's deploy, and Compose given the very file the
            # tool deployed (`up --wait` finds every container current and only waits).
            timed([*cli, "deploy", "--env", "dev"], env, work)  # settles what the changes left
            deployed = work / "deployed-compose.yaml"
            deployed.write_text(applied_file(work, env))
            for _ in range(5):
                noop.append(timed([*cli, "deploy", "--env", "dev"], env, work))
                noop_compose.append(
                    timed(
                        [compose, "-f", str(deployed), "up", "-d", "--wait", "--remove-orphans"],
                        env,
                        work,
                    )
                )
            noop_steps = release_steps(work, env, cli, last=1)
        if options.only_noop:
            return
        if not options.only_bad_release:
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
        clean_up(name, work, env, cli, compose)
        print_cold(cold_hand, cold_tool)
        if noop:
            print_comparison(for_hand, for_tool, noop, noop_compose, failing)
            print(f"  steps of the last no-op deploy: {noop_steps}")
    serving = f"{bad_serving:6.2f} s" if bad_serving is not None else "never seen"
    print(f"bad release (GET /api/stories 500): good one serving  {serving}")
    print(f"bad release (GET /api/stories 500): whole command      {bad_total:6.2f} s")
    print(f"  steps of the bad release and of its rollback: {steps}")
    if options.kubernetes:
        import kube_rollback_bench

        print("Kubernetes, a failed smoke check (bench/kube_rollback_bench.py):")
        kube_rollback_bench.main(["--rounds", str(options.kube_rounds)])


def print_cold(cold_hand: list[float], cold_tool: list[float]) -> None:
    if not cold_tool:
        return
    ch, ct = statistics.median(cold_hand), statistics.median(cold_tool)
    runs = ", ".join(f"{h:.1f}/{t:.1f}" for h, t in zip(cold_hand, cold_tool, strict=True))
    print(f"cold: docker compose up --build --wait                 {ch:6.2f} s")
    print(
        f"cold: autodevhub deploy --env dev                      {ct:6.2f} s "
        f"({ct / ch:.2f}x; medians of {len(cold_tool)}; by hand/tool per round: {runs})"
    )


def applied_file(work: Path, env: dict[str, str]) -> str:
    """The compose.yaml the serving release applied, read from the history the Docker host
    keeps (byte for byte what the tool handed to Compose)."""
    from autodevhub_cli.core.context import open_context

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        ctx = open_context("dev", work, [], None)
        current = ctx.store.current()
        assert current is not None, "no serving release"
        text = ctx.store.text(current, ctx.target.rendered_filename)
        assert text is not None, f"release {current.id} keeps no compose.yaml"
        return text
    finally:
        os.environ.clear()
        os.environ.update(saved)


def release_steps(work: Path, env: dict[str, str], cli: list[str], last: int = 2) -> str:
    """The step timings of the `last` newest releases (by default the bad release and the
    rollback), from the history the Docker host keeps."""
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
    for data in json.loads(listed.stdout)["releases"][-last:]:
        timings = ", ".join(f"{k} {v:.1f}" for k, v in data.get("timings", {}).items())
        parts.append(f"{data['status']}: {timings}")
    return "; ".join(parts)


def print_comparison(
    for_hand: list[float],
    for_tool: list[float],
    noop: list[float],
    noop_compose: list[float],
    failing: float,
) -> None:
    if for_tool:
        hand, tool = statistics.median(for_hand), statistics.median(for_tool)
        print(f"one backend change: docker compose up --build --wait   {hand:6.2f} s (median of 3)")
        print(
            f"one backend change: autodevhub deploy --env dev        {tool:6.2f} s "
            f"(median of 3, {tool / hand:.2f}x; adds the push to the registry and smoke checks)"
        )
    theirs, ours = statistics.median(noop_compose), statistics.median(noop)
    print(f"nothing changed: docker compose up -d --wait (same file) {theirs:6.2f} s (median of 5)")
    print(
        f"nothing changed: autodevhub deploy --env dev           "
        f"{ours:6.2f} s (median of 5, {ours / theirs:.2f}x; adds the build's content-tag check, "
        "the lock, the history and smoke checks)"
    )
    if failing:
        print(f"failed smoke check -> previous release healthy again   {failing:6.2f} s")


if __name__ == "__main__":
    main()
