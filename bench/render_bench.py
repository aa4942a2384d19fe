"""Benchmark: `autodevhub render --env ENV` as a fresh process (wall time, median of N runs).

Usage: python bench/render_bench.py [--env prod] [--runs 30] [--installed]

Reports:
- unchanged: the render cache holds this exact render (same files, flags, env vars, versions);
  the command answers before importing pydantic or Jinja;
- one value changed: a different `--set` on every run, so the render cache misses; the Jinja
  bytecode and the validation verdicts of the unchanged documents are reused (the edit loop);
- cold: every cache empty (Jinja compiles all templates, every schema engine runs);
- --no-validate with one value changed;
- the peer: `kubectl kustomize` building the same objects (the rendered manifests split into one
  file each, with a kustomization adding common labels and the namespace), timed in the same
  rounds as the changed-value render (one of each, alternating), and the ratio of the two;
- the floor, in the same rounds: a Python process that only imports what every render needs
  whatever autodevhub's own code does (Typer, PyYAML, Jinja's sandbox), and its ratio to the peer.

By default the `autodevhub` of this interpreter is measured (here an editable install, whose
import hook and this machine's own `.pth` files cost every Python process about 40 ms of
`site`). `--installed` measures a regular install instead, as `pip install autodevhub` or
pipx gives a user: a throwaway virtualenv in a temporary folder with `pip install .` (its
dependencies from the package index or pip's cache), removed at the end.
`--importtime` adds where a changed-value render's imports go: one more such render under
`python -X importtime`, its self times summed by top-level package.
Bytecode (.pyc) writing is enabled for the measured processes, as on a normal installation.
Touches nothing outside its temporary folders (the render cache is one of its own).
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


def _installed(folder: Path) -> str:
    """A regular (non-editable) install of this checkout in a virtualenv of its own."""
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(REPO)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return str(venv / "bin" / "autodevhub")


def _alternating(
    first: list[str], others: list[list[str]], env: dict[str, str], runs: int
) -> list[list[float]]:
    """One changed-value render of `first`, then one run of each of `others`, `runs` times."""
    samples: list[list[float]] = [[] for _ in range(1 + len(others))]
    for _ in range(runs):
        samples[0] += _time(first, env, 1, None, vary=True)
        for i, other in enumerate(others, start=1):
            samples[i] += _time(other, env, 1, None)
    return samples


# What every render imports whatever the value model and the work: the CLI framework the
# commands are written in, the template engine and the YAML parser (with its C loader).
FLOOR_IMPORTS = "import typer, yaml, jinja2.sandbox"


def _import_times(python: str, base: list[str], env: dict[str, str]) -> None:
    """One changed-value render under -X importtime: self time summed by top-level package."""
    # The console script itself (not `-c`, which would put the working folder, this checkout,
    # first on sys.path in place of the installed package).
    args = [*base, "--set", f"components.frontend.replicas={next(_VARIED)}"]
    proc = subprocess.run(
        [python, "-X", "importtime", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    groups: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.split("|")
        try:
            self_us = int(parts[0].split(":")[1])
        except ValueError:
            continue  # the header line
        name = parts[2].strip()
        root = name.split(".")[0]
        if root == "autodevhub_cli":
            root = ".".join(name.split(".")[:3])
        groups[root] = groups.get(root, 0) + self_us
    total = sum(groups.values())
    print(f"imports of one changed-value render: {total / 1000:.1f} ms (self times, by package)")
    for root, micros in sorted(groups.items(), key=lambda item: -item[1])[:15]:
        print(f"  {root:40} {micros / 1000:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="prod")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--installed", action="store_true", help="measure a regular install in a fresh venv"
    )
    parser.add_argument(
        "--importtime", action="store_true", help="also show where a render's imports go"
    )
    args = parser.parse_args()
    cache = Path(tempfile.mkdtemp(prefix="autodevhub-bench-cache-"))
    script = _installed(cache) if args.installed else _script()
    python = str(Path(script).parent / "python") if args.installed else sys.executable
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "CI")}
    env["XDG_CACHE_HOME"] = str(cache)
    base = [script, "render", "--env", args.env]
    # Warm-up: .pyc files for every module the render path imports.
    _time(base, env, 2, None)
    _time([python, "-c", "pass"], env, 3, None)
    changed_name = f"render --env {args.env}, one value changed"
    rows = [
        ("python -c pass (interpreter start)", _time([python, "-c", "pass"], env, args.runs, None)),
        (f"render --env {args.env}, unchanged", _time(base, env, args.runs, None)),
        (
            f"render --env {args.env}, cold (no cache)",
            _time(base, env, args.runs, cache / "autodevhub"),
        ),
        (
            f"render --env {args.env} --no-validate, changed",
            _time([*base, "--no-validate"], env, args.runs, None, vary=True),
        ),
    ]
    kubectl = shutil.which("kubectl")
    peer_name = f"kubectl kustomize (the same {args.env} objects)"
    floor_name = "python -c 'import typer, yaml, jinja2'"
    if kubectl:
        folder = _kustomization(script, args.env, env, cache)
        peer = [kubectl, "kustomize", str(folder)]
        _time(peer, env, 2, None)
        floor = [python, "-c", FLOOR_IMPORTS]
        changed, theirs, floors = _alternating(base, [peer, floor], env, args.runs)
        rows += [(changed_name, changed), (peer_name, theirs), (floor_name, floors)]
    else:
        rows.append((changed_name, _time(base, env, args.runs, None, vary=True)))
    if args.importtime:
        _import_times(python, base, env)
    shutil.rmtree(cache, ignore_errors=True)
    header = f"{'case':45} {'median ms':>10} {'p90 ms':>8} {'min ms':>8}"
    which = "a regular install in a fresh venv" if args.installed else script
    print(f"{header}  (n={args.runs}, {os.cpu_count()} cores; {which})")
    for name, samples in rows:
        p90 = statistics.quantiles(samples, n=10)[-1]
        print(f"{name:45} {statistics.median(samples):10.1f} {p90:8.1f} {min(samples):8.1f}")
    medians = {name: statistics.median(samples) for name, samples in rows}
    if peer_name in medians:
        ratio = medians[changed_name] / medians[peer_name]
        print(f"changed-value render / kubectl kustomize: {ratio:.2f}x (goal: <= 1.5)")
        floor_ratio = medians[floor_name] / medians[peer_name]
        print(
            f"the imports every render needs / kubectl kustomize: {floor_ratio:.2f}x "
            f"(`{FLOOR_IMPORTS}`, nothing of autodevhub)"
        )
    else:
        print("kubectl not found: no kustomize comparison")


if __name__ == "__main__":
    main()
