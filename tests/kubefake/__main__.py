"""Serve the API server double on its own: `python -m tests.kubefake --kubeconfig PATH`.

For trying autodevhub against it by hand, or running the Kubernetes suite in its real-cluster
mode (AUTODEVHUB_K8S_KUBECONFIG) against a standalone server. Runs until interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from pathlib import Path

from .server import KubeFake


def main() -> None:
    """Start, write the kubeconfig, wait for SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m tests.kubefake", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True, help="where to write it")
    parser.add_argument("--auto-ready", action="store_true", help="play the controllers")
    parser.add_argument("--no-crds", action="store_true", help="serve no Argo/Prometheus CRDs")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with KubeFake(auto_ready=args.auto_ready, with_crds=not args.no_crds) as fake:
        fake.kubeconfig(args.kubeconfig)
        print(f"kubefake serving {fake.url}; kubeconfig {args.kubeconfig}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()
