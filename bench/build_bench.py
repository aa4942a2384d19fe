"""Benchmark: `autodevhub build --env dev --push` cold, after one backend change, and no-op.

Usage: python bench/build_bench.py   (needs the Docker engine, the registry on 127.0.0.1:5000 and
the stand-in base images from scripts/ci/provision-docker.sh; pushes to a fresh repository).

- cold: `--no-cache` and an empty wheelhouse cache: every layer built, wheels fetched;
- one backend file changed: only the backend rebuilds, dependency layers come from the cache;
- no-op: nothing changed; the registry already has both content tags: the engine is only asked
  what each base image is (part of the tag), nothing is pulled or built.
"""

from __future__ import annotations

import os
import shutil
import sysconfig
import uuid
from pathlib import Path

from bench_common import base_image_env, copy_project, timed


def main() -> None:
    work = copy_project("autodevhub-build-bench-")
    env = {**os.environ, **base_image_env()}
    env["AUTODEVHUB__REGISTRY__URL"] = f"127.0.0.1:5000/bench{uuid.uuid4().hex[:6]}"
    env["XDG_CACHE_HOME"] = str(work / "cache")
    cli = [
        str(Path(sysconfig.get_path("scripts")) / "autodevhub"),
        "build",
        "--env",
        "dev",
        "--push",
    ]
    cold = timed([*cli, "--no-cache"], env, work)
    source = work / "service" / "logs.py"
    source.write_text(source.read_text() + "\n# bench change\n")
    warm = timed(cli, env, work)
    noop = [timed(cli, env, work) for _ in range(5)]
    shutil.rmtree(work, ignore_errors=True)
    print(f"cold build + push (no cache, wheels fetched)   {cold:7.2f} s")
    print(f"one backend file changed (backend only)        {warm:7.2f} s")
    print(f"no-op (median of 5, bases inspected only)      {sorted(noop)[2]:7.2f} s")


if __name__ == "__main__":
    main()
