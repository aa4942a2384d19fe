"""Benchmark: `autodevhub build --env dev --push` cold, after one backend change, and no-op.

Usage: python bench/build_bench.py   (needs the Docker engine, the registry on 127.0.0.1:5000 and
the stand-in base images from scripts/ci/provision-docker.sh; pushes to a fresh repository).

- cold: `--no-cache` and an empty wheelhouse cache: every layer built, wheels fetched;
- one backend file changed: only the backend rebuilds, dependency layers come from the cache;
- no-op: nothing changed; the registry already has both content tags, no engine call.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASES = {
    "PYTHON": "autodevhub-ci/python:3.11-bookworm",
    "NODE": "autodevhub-ci/node:18-bookworm",
    "NGINX": "autodevhub-ci/nginx:1.22-bookworm",
}


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return elapsed


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="autodevhub-build-bench-"))
    for folder in ("environments", "templates", "service"):
        shutil.copytree(
            REPO / folder,
            work / folder,
            ignore=shutil.ignore_patterns("__pycache__", "dist", "var", "node_modules"),
        )
    env = dict(os.environ)
    env.update({f"AUTODEVHUB__BUILD__BASE_IMAGES__{k}": v for k, v in BASES.items()})
    env["AUTODEVHUB__REGISTRY__URL"] = f"127.0.0.1:5000/bench{uuid.uuid4().hex[:6]}"
    env["XDG_CACHE_HOME"] = str(work / "cache")
    cli = [
        str(Path(sysconfig.get_path("scripts")) / "autodevhub"),
        "build",
        "--env",
        "dev",
        "--push",
    ]
    cold = run([*cli, "--no-cache"], env, work)
    source = work / "service" / "logs.py"
    source.write_text(source.read_text() + "\n# bench change\n")
    warm = run(cli, env, work)
    noop = [run(cli, env, work) for _ in range(5)]
    shutil.rmtree(work, ignore_errors=True)
    print(f"cold build + push (no cache, wheels fetched)   {cold:7.2f} s")
    print(f"one backend file changed (backend only)        {warm:7.2f} s")
    print(f"no-op (median of 5, no engine call)            {sorted(noop)[2]:7.2f} s")


if __name__ == "__main__":
    main()
