"""Benchmark: the local Kubernetes control plane (scripts/local-cluster.sh).

Usage: python bench/cluster_bench.py [--runs N] [--cold]

- `up` on a running cluster (what every test session and CI run after the first pays);
- a warm start: `down`, then `up` from the cached binaries (a new cluster: etcd, the API server,
  controllers, two kwok nodes, the CRDs, the Argo Rollouts controller);
- with --cold, the whole build from Go modules in a fresh state folder, Go build cache and module
  cache (what a new machine pays once; about 15 minutes on 2 cores, both cores busy). The cluster
  named by AUTODEVHUB_CLUSTER_NAME (default autodevhub) is the one measured; --cold builds
  beside it and starts nothing.

There is no peer run side by side: kind and k3d need container images from a registry this
machine cannot reach. No test asserts these figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_common import REPO, timed

SCRIPT = ["bash", str(REPO / "scripts" / "local-cluster.sh")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="also time a cold build")
    args = parser.parse_args()
    env = dict(os.environ)
    timed([*SCRIPT, "up"], env, REPO)  # built and running before anything is timed
    again = [timed([*SCRIPT, "up"], env, REPO) for _ in range(args.runs)]
    starts = []
    for _ in range(args.runs):
        timed([*SCRIPT, "down"], env, REPO)
        starts.append(timed([*SCRIPT, "up"], env, REPO))
    print(f"up, cluster running:        median {statistics.median(again):6.2f} s  {again}")
    print(f"down + up, binaries cached: median {statistics.median(starts):6.2f} s  {starts}")
    if args.cold:
        with tempfile.TemporaryDirectory(prefix="cluster-cold-") as folder:
            root = Path(folder)
            cold_env = {
                **env,
                "AUTODEVHUB_CI_STATE": str(root / "state"),
                "GOCACHE": str(root / "gocache"),
                "GOMODCACHE": str(root / "gomod"),
            }
            seconds = timed(
                ["bash", str(REPO / "scripts" / "cluster" / "build.sh")], cold_env, REPO
            )
            # Go writes its module cache read-only; make it removable.
            subprocess.run(["chmod", "-R", "u+w", str(root / "gomod")], check=True)
        print(f"cold build from Go modules: {seconds / 60:6.1f} min")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
