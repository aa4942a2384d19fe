"""Benchmark: `autodevhub render --env ENV` as a fresh process (wall time, median of N runs).

Usage: python bench/render_bench.py [--env prod] [--runs 30]

Reports:
- unchanged: the render cache holds this exact render (same files, flags, env vars, versions);
  the console script answers before importing Typer, pydantic or Jinja;
- one value changed: a different `--set` on every run, so the render cache misses (the console
  script renders through the core without the Typer app); the Jinja
  bytecode and the validation verdicts of the unchanged documents are reused (the edit loop);
  measured twice: in its own process (`AUTODEVHUB_NO_SERVER=1`), and handed to the warm render
  server (autodevhub_cli/render_server.py: imports done once, each render loaded, validated and
  rendered afresh in a fork of it);
- cold: every cache empty (Jinja compiles all templates, every schema engine runs);
- --no-validate with one value changed;
- the peer: `kubectl kustomize` building the same objects (the rendered manifests split into one
  file each, with a kustomization adding common labels and the namespace), and the ratio of the
  changed-value render to it.
Bytecode (.pyc) writing is enabled for the measured processes, as on a normal installation.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _script() -> str:
    candidate = Path(sysconfig.get_path("scripts")) / "autodevhub"
    if not candidate.exists():
        sys.exit("autodevhub is not installed: run `pip install -e .` first")
    return str(candidate)


_VARIED = iter(range(10, 1_000_000))


def _time(
    cmd: list[str], env: dict[str, str], runs: int, reset_cache: Path | None, vary: bool = False
) -> list[float]:
    samples = []
    for _ in range(runs):
        if reset_cache is not None:
            shutil.rmtree(reset_cache, ignore_errors=True)
        # A value no earlier run of this benchmark had: the render cache cannot answer.
        value = next(_VARIED)
        args = [*cmd, "--set", f"components.frontend.replicas={value}"] if vary else cmd
        start = time.perf_counter()
        subprocess.run(args, env=env, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _wait_for_server(env: dict[str, str]) -> None:
    code = "from autodevhub_cli import render_server as s; print(s.socket_path())"
    path = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    deadline = time.monotonic() + 30
    while not Path(path).exists():
        if time.monotonic() > deadline:
            sys.exit(f"the render server did not start ({path})")
        time.sleep(0.1)


def _stop_server(env: dict[str, str]) -> None:
    """Stop the render servers this benchmark started (their socket is under its cache)."""
    import signal

    mark = env["XDG_CACHE_HOME"].encode()
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"autodevhub_cli.render_server" in cmdline and mark in cmdline:
            os.kill(int(proc.name), signal.SIGTERM)


def _kustomization(script: str, env_name: str, env: dict[str, str], folder: Path) -> Path:
    """The environment's manifests as kustomize input: one file per object, a kustomization."""
    import yaml

    out = folder / "kustomize"
    subprocess.run(
        [script, "render", "--env", env_name, "--out", str(out)],
        env=env,
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    files = sorted(p.name for p in out.iterdir() if p.suffix == ".yaml")
    namespaces = [
        doc["metadata"]["name"]
        for name in files
        for doc in yaml.safe_load_all((out / name).read_text())
        if doc and doc.get("kind") == "Namespace"
    ]
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespaces[0] if namespaces else "default",
        "labels": [
            {"pairs": {"app.kubernetes.io/part-of": "autodevhub"}, "includeSelectors": False}
        ],
        "resources": files,
    }
    (out / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="prod")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    script = _script()
    cache = Path(tempfile.mkdtemp(prefix="autodevhub-bench-cache-"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "CI")}
    env["XDG_CACHE_HOME"] = str(cache)
    env.pop("XDG_RUNTIME_DIR", None)  # the render server's socket goes under the bench's cache
    alone = {**env, "AUTODEVHUB_NO_SERVER": "1"}
    base = [script, "render", "--env", args.env]
    # Warm-up: .pyc files for every module the render path imports.
    _time(base, env, 2, None)
    _time([sys.executable, "-c", "pass"], env, 3, None)
    rows = [
        (
            "python -c pass (interpreter start)",
            _time([sys.executable, "-c", "pass"], env, args.runs, None),
        ),
        (f"render --env {args.env}, unchanged", _time(base, alone, args.runs, None)),
        (
            f"render --env {args.env}, one value changed",
            _time(base, alone, args.runs, None, vary=True),
        ),
        (
            f"render --env {args.env}, cold (no cache)",
            _time(base, alone, args.runs, cache / "autodevhub"),
        ),
        (
            f"render --env {args.env} --no-validate, changed",
            _time([*base, "--no-validate"], alone, args.runs, None, vary=True),
        ),
    ]
    # The first changed render starts the server; wait until it listens, then measure.
    _time([*base, "--set", "labels.bench=start"], env, 1, None)
    _wait_for_server(env)
    _time([*base, "--set", "labels.bench=warm"], env, 2, None)
    rows.append(
        (
            f"render --env {args.env}, one value changed, server",
            _time(base, env, args.runs, None, vary=True),
        )
    )
    _stop_server(env)
    kubectl = shutil.which("kubectl")
    if kubectl:
        folder = _kustomization(script, args.env, env, cache)
        peer = [kubectl, "kustomize", str(folder)]
        _time(peer, env, 2, None)
        rows.append(
            (f"kubectl kustomize (the same {args.env} objects)", _time(peer, env, args.runs, None))
        )
    _stop_server(env)
    shutil.rmtree(cache, ignore_errors=True)
    header = f"{'case':45} {'median ms':>10} {'p90 ms':>8} {'min ms':>8}"
    print(f"{header}  (n={args.runs}, {os.cpu_count()} cores)")
    for name, samples in rows:
        p90 = statistics.quantiles(samples, n=10)[-1]
        print(f"{name:45} {statistics.median(samples):10.1f} {p90:8.1f} {min(samples):8.1f}")
    medians = {name: statistics.median(samples) for name, samples in rows}
    changed = medians[f"render --env {args.env}, one value changed"]
    served = medians[f"render --env {args.env}, one value changed, server"]
    peer_name = f"kubectl kustomize (the same {args.env} objects)"
    if peer_name in medians:
        peer_ms = medians[peer_name]
        print(
            f"changed-value render / kubectl kustomize: {changed / peer_ms:.2f}x in its own process"
        )
        print(
            f"changed-value render / kubectl kustomize: {served / peer_ms:.2f}x through the "
            "render server (goal: <= 1.0)"
        )
    else:
        print("kubectl not found: no kustomize comparison")


if __name__ == "__main__":
    main()
