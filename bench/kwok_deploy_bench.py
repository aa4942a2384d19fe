"""Benchmark: `autodevhub deploy` beside Helm on the local cluster's kwok nodes, staging.

Usage: python bench/kwok_deploy_bench.py [--rounds 5] [--helm PATH] [--timeout 300]
  (needs `bash scripts/local-cluster.sh up`; nothing is built, pulled or pushed)

Three cases, each the median of --rounds rounds: the first release into an empty namespace, a
no-op deploy (the same again) and one changed value (a backend env value). Every round gives
each tool a fresh namespace of its own; within a case the tools run one after the other, their
order reversed every round, so a busy machine weighs on all of them alike:

- autodevhub: `deploy --env staging --images FILE` (one build record with fake digests, as the
  tests use: the kwok nodes pull nothing), timed as a fresh process to its exit: render, the
  migrate Job, apply and wait, the smoke checks, the record, prune. Its smoke checks go to a
  stub HTTP server in this process (smoke.urls) that answers each check of the project as the
  app would, at once (GET 200, the story POST 202, its poll `done`, its DELETE 204): the
  checks' own cost, not the app's. Also reported: that time minus the release's recorded
  `smoke` timing, and where the time goes (the release's `timings` from `history -o json`;
  "other" is the rest of the process: start, lock, history, records).
- autodevhub, checks off: the same with `--set smoke.checks=[] --set smoke.probes=false`
  (the environment model allows it: no request is made), Helm's work measured, not subtracted.
- Helm: a chart holding what `autodevhub render` prints for the same namespace and build (made
  before the clock starts; the Namespace left out, the migrate Job a `pre-install,pre-upgrade`
  hook, as real_node_bench.helm_chart makes it), `helm upgrade --install --wait
  --wait-for-jobs`, to its exit. Helm makes no smoke check, and re-runs its hook Job on every
  upgrade (autodevhub runs a task again only when its inputs change).

kwok makes pods Ready and Jobs complete without running anything, so these figures are the
tools' own work against a real API server and controllers (apply, waits, records), not image
pulls or app start-up: see bench/real_node_bench.py for that.

What it touches: only objects it creates. In the cluster of --kubeconfig (default: the local
cluster's), per round and tool, a Namespace `bench-kdh-<id>` (no real-node annotation: its pods
go to the kwok nodes) and a PersistentVolume `bench-kdh-<id>-backups` (a hostPath volume bound
ahead to the `backups` claim; nothing mounts it, the local cluster has no provisioner), deleted
at the end of each round and again on any exit (failure, Ctrl-C, SIGTERM); on the host, a temp
folder (the project copy, the charts, Helm's cache and config) and a stub HTTP server on
127.0.0.1, both gone at the end. Helm is built from the Go module proxy into
$AUTODEVHUB_CI_STATE/bench (once) unless --helm names a binary.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import sysconfig
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from real_node_bench import helm_chart, run, timed  # noqa: E402
from state_bench import helm_binary  # noqa: E402

ENV = "staging"
PREFIX = "bench-kdh-"
KUBECONFIG = Path(
    os.environ.get("KUBECONFIG", "/var/lib/autodevhub-ci/cluster/run/autodevhub/kubeconfig")
)
CLI = str(Path(sysconfig.get_path("scripts")) / "autodevhub")
DIGEST = "sha256:" + "1" * 64
CHANGE = "components.backend.env.BENCH_MARK=changed"
CASES = (("first", []), ("no-op", []), ("one change", ["--set", CHANGE]))
CHECKS = "autodevhub"
OFF = "autodevhub, checks off"
HELM = "helm"
TOOLS = (CHECKS, OFF, HELM)
CHECKS_OFF = ["--set", "smoke.checks=[]", "--set", "smoke.probes=false"]
STEPS = ("render", "tasks", "apply", "smoke", "prune")


class _Stub(BaseHTTPRequestHandler):
    """Answers every smoke check of the project (environments/_base.yaml) as the app would."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes: without TCP_NODELAY, Nagle and the client's
    # delayed ACK hold every keep-alive answer ~40 ms, and the checks would time the stub.
    disable_nagle_algorithm = True

    def _send(self, status: int, body: object = None, html: bool = False) -> None:
        data = b""
        if html:
            data = b"<html><body>stub</body></html>"
        elif body is not None:
            data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if html else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _drain(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path.startswith("/api/stories/"):
            story = {"id": path.rsplit("/", 1)[1], "status": "done", "stories": [{"title": "s"}]}
            self._send(200, story)
        elif path.startswith("/api/"):
            self._send(200, {"items": []})
        else:
            self._send(200, html=True)

    def do_POST(self) -> None:
        self._drain()
        self._send(202, {"id": uuid.uuid4().hex, "status": "queued"})

    def do_DELETE(self) -> None:
        self._drain()
        self._send(204)

    def log_message(self, *_args: object) -> None:
        pass


@contextmanager
def stub_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Namespaces:
    """The namespaces (and their backups volumes) this run made; all deleted by `clean`."""

    def __init__(self, kube: Any, work: Path) -> None:
        self.kube, self.work = kube, work
        self.made: list[str] = []

    def new(self) -> str:
        name = f"{PREFIX}{uuid.uuid4().hex[:8]}"
        self.made.append(name)
        self.kube.create(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": {"autodevhub.io/bench": "kwok-deploy"}},
            }
        )
        from tests.deploy.local_cluster import host_path_volume

        folder = self.work / f"backups-{name}"
        folder.mkdir()
        self.kube.create(host_path_volume(f"{name}-backups", folder, name, "backups", "100Gi"))
        return name

    def clean(self, wait: float = 180) -> None:
        """Delete every namespace and volume made so far and wait (up to `wait` s) until the
        namespaces are gone, so their deletion does not overlap the next round's clock."""
        from autodevhub_cli.core.adapters.kube import ObjectRef

        refs = [ObjectRef("v1", "Namespace", "", n) for n in self.made]
        for name, ref in zip(self.made, refs, strict=True):
            for doomed in (ref, ObjectRef("v1", "PersistentVolume", "", f"{name}-backups")):
                try:
                    self.kube.delete(doomed)
                except Exception as exc:  # keep deleting the rest
                    print(f"warning: deleting {doomed}: {exc}", file=sys.stderr)
        deadline = time.monotonic() + wait
        for ref in refs:
            while time.monotonic() < deadline:
                try:
                    if self.kube.get(ref) is None:
                        break
                except Exception:
                    break
                time.sleep(0.5)
            else:
                print(f"warning: {ref.name} still terminating", file=sys.stderr)
        self.made.clear()


def last_release(env: dict[str, str], project: Path) -> dict[str, Any]:
    listed = json.loads(run([CLI, "history", "--env", ENV, "--output", "json"], env, project))
    release = listed["releases"][-1]
    if release.get("status") != "deployed":
        sys.exit(f"{env['AUTODEVHUB__NAMESPACE']}: last release is {release.get('status')}")
    return dict(release)


def backend_mark(kube: Any, ns: str) -> str | None:
    from autodevhub_cli.core.adapters.kube import ObjectRef

    deployment = kube.get(ObjectRef("apps/v1", "Deployment", ns, "backend")) or {}
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
    for item in (containers or [{}])[0].get("env") or []:
        if item["name"] == "BENCH_MARK":
            return str(item.get("value"))
    return None


def one_round(
    n: int,
    kube: Any,
    spaces: Namespaces,
    helm: str,
    work: Path,
    images: Path,
    base: dict[str, str],
    stub: str,
    timeout: float,
) -> dict[str, Any]:
    """Each tool's three cases in a namespace of its own; the tools' order is reversed every
    other round. {tool: {case: seconds}} plus {tool + ' timings': {case: {step: s}}}."""
    project = work / "project"
    order = TOOLS if n % 2 == 0 else tuple(reversed(TOOLS))
    ns = {tool: spaces.new() for tool in TOOLS}
    envs = {tool: {**base, "AUTODEVHUB__NAMESPACE": ns[tool]} for tool in TOOLS}
    envs[CHECKS].update(
        {
            "AUTODEVHUB__SMOKE__URLS__FRONTEND": stub,
            "AUTODEVHUB__SMOKE__URLS__BACKEND": stub,
            # The third check is the latency budget (200 ms): a busy 2-core machine gets more.
            "AUTODEVHUB__SMOKE__CHECKS__2__LATENCY__BUDGET_MS": "2000",
        }
    )
    deploy = [CLI, "deploy", "--env", ENV, "--images", str(images), "--timeout", str(timeout)]
    # Helm's charts, made before any clock starts: the render for its namespace, then changed.
    render = [CLI, "render", "--env", ENV, "--images", str(images)]
    charts = {}
    for case, more in CASES:
        folder = work / "charts" / ns[HELM] / case.replace(" ", "-")
        folder.mkdir(parents=True)
        charts[case] = helm_chart(folder, run([*render, *more], envs[HELM], project), "app")
    upgrade = [helm, "upgrade", "--install", "app", "-n", ns[HELM], "--wait", "--wait-for-jobs"]
    upgrade += ["--timeout", f"{int(timeout)}s"]
    figures: dict[str, Any] = {t: {} for t in TOOLS} | {f"{t} timings": {} for t in TOOLS[:2]}
    for case, more in CASES:
        for tool in order:
            if tool == HELM:
                seconds = timed([*upgrade, str(charts[case])], envs[tool], project)
            else:
                extra = CHECKS_OFF if tool == OFF else []
                seconds = timed([*deploy, *extra, *more], envs[tool], project)
                release = last_release(envs[tool], project)
                figures[f"{tool} timings"][case] = dict(release.get("timings") or {})
                if tool == CHECKS:
                    smoke = release.get("smoke") or {}
                    if not smoke.get("ok") or not smoke.get("checks"):
                        sys.exit(f"{ns[tool]}: the smoke checks did not run: {smoke}")
            figures[tool][case] = seconds
            want = "changed" if case == "one change" else None
            if backend_mark(kube, ns[tool]) != want:
                sys.exit(f"{ns[tool]} ({tool}, {case}): backend BENCH_MARK is not {want}")
    return figures


def report(rounds: list[dict[str, Any]]) -> None:
    def median(values: list[float]) -> float:
        return statistics.median(values)

    print(f"\n{ENV} on kwok nodes, medians of {len(rounds)} rounds (seconds):")
    head = ["case", "adh (checks)", "adh - smoke", "adh checks off", "helm"]
    head += ["adh/helm", "(adh-smoke)/helm", "off/helm"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for case, _ in CASES:
        with_checks = median([r[CHECKS][case] for r in rounds])
        minus = median([r[CHECKS][case] - r[f"{CHECKS} timings"][case]["smoke"] for r in rounds])
        off = median([r[OFF][case] for r in rounds])
        helm = median([r[HELM][case] for r in rounds])
        cells = [f"{v:.2f}" for v in (with_checks, minus, off, helm)]
        cells += [f"{v / helm:.2f}x" for v in (with_checks, minus, off)]
        print(f"| {case} | " + " | ".join(cells) + " |")
    for tool in (CHECKS, OFF):
        print(f"\n{tool}: the release's recorded timings, medians (seconds; - = step not run):")
        print("| case | " + " | ".join(STEPS) + " | other | total |")
        print("|" + "---|" * (len(STEPS) + 3))
        for case, _ in CASES:
            cells = []
            for step in STEPS:
                values = [r[f"{tool} timings"][case].get(step) for r in rounds]
                known = [v for v in values if v is not None]
                cells.append(f"{median(known):.2f}" if len(known) == len(values) else "-")
            other = [r[tool][case] - sum(r[f"{tool} timings"][case].values()) for r in rounds]
            total = median([r[tool][case] for r in rounds])
            print(f"| {case} | " + " | ".join(cells) + f" | {median(other):.2f} | {total:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--helm", help="a helm binary (default: built once from Go modules)")
    parser.add_argument("--kubeconfig", default=str(KUBECONFIG))
    parser.add_argument("--timeout", type=float, default=300, help="per deploy, seconds")
    options = parser.parse_args()

    from autodevhub_cli.core.adapters.kube import Kube

    # SIGTERM unwinds like Ctrl-C, so the namespaces are deleted.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    helm = helm_binary(options.helm)
    print(run([helm, "version", "--short"]).strip())
    kubeconfig = options.kubeconfig
    kube = Kube.connect(kubeconfig=kubeconfig)
    work = Path(tempfile.mkdtemp(prefix="kwok-bench-"))
    project = work / "project"
    for folder in ("environments", "templates"):
        shutil.copytree(REPO / folder, project / folder)
    images = work / "images.json"
    names = ("backend", "worker", "frontend")
    built = [{"name": n, "tag": "kwok-bench", "digest": DIGEST} for n in names]
    images.write_text(json.dumps({"images": built, "environment": ENV}))
    base = {
        **os.environ,
        "KUBECONFIG": kubeconfig,
        "AUTODEVHUB__KUBERNETES__KUBECONFIG": kubeconfig,
        "HELM_CACHE_HOME": str(work / "helm-cache"),
        "HELM_CONFIG_HOME": str(work / "helm-config"),
        "HELM_DATA_HOME": str(work / "helm-data"),
    }
    spaces = Namespaces(kube, work)
    rounds = []
    try:
        with stub_server() as stub:
            for n in range(options.rounds):
                figures = one_round(
                    n, kube, spaces, helm, work, images, base, stub, options.timeout
                )
                spaces.clean()
                shown = {t: {c: round(s, 2) for c, s in figures[t].items()} for t in TOOLS}
                print(f"round {n + 1}: {json.dumps(shown)}", flush=True)
                rounds.append(figures)
        report(rounds)
    finally:
        spaces.clean()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
