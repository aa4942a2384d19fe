"""Benchmark: recovery from a release whose smoke check fails, on the local control plane.

Usage: python bench/kube_rollback_bench.py [--rounds N] [--only rolling|blue-green]
           [--set KEY=VALUE ...]
  (needs the control plane of `bash scripts/local-cluster.sh up`, or AUTODEVHUB_K8S_KUBECONFIG;
  --set goes to every deploy of the run)

Each round runs in a namespace of its own (deleted afterwards) from a throwaway copy of the
project, wired to the cluster the way the Kubernetes tests do it (tests/deploy/kube_cluster.py):
recorded builds instead of images, a good release first, then a bad one whose declared check
(`GET /api/nope`) answers 404 every time, so it fails after `smoke.confirm_attempts` identical
answers. kwok pods run no process: the smoke checks reach a stub HTTP server in this process
through `smoke.urls` / `smoke.preview_urls`, and "serving" below means ready endpoints of the
right version behind the Service, read from the API, not requests answered by a pod. Where the
cluster cannot write EndpointSlices (the local control plane's pods have loopback IPs, which the
API server refuses in a slice), the endpoints are derived from the pods the Service selects, by
the EndpointSlice controller's rules; the output says which.

The deploy runs as its own process (the `autodevhub` console script); every line it prints is
stamped with this process's clock as it arrives, so its step lines (`[  19.7s] smoke: ...`) and
the pollers share one clock. Each poller asks the API server every 50 ms (or as fast as its
answers come, when they take longer) from its own thread and connection.

- rolling (staging: the backend is a Deployment): from the `smoke: <check>: FAILED` line to the
  first poll at which the previous version serves again: its ReplicaSet has all its replicas
  ready and the backend Service's ready endpoints are its pods only, as many as it has
  replicas. On the way: the previous ReplicaSet scaled up again (the re-apply reached the
  Deployment and its controller acted) and all ready. After it: no endpoint of the bad version
  left at all (terminating ones included) and the end of the command (the restored release
  checked with its own checks). Where the command's time goes: the re-apply (the
  `rolling back` line to the first `wait` line after it, of which the last apply and the prune
  listing), and how long after every workload of the restored release was ready (by the tool's
  own `readiness`, polled) the tool went on to its smoke checks.
- blue-green (prod: the backend is an Argo Rollouts Rollout, the good release promoted): a
  poller reads the active Service `backend` (its selector) and its endpoints from the start of
  the bad deploy to the end of the abort (the preview ReplicaSet scaled to zero, or the end of
  the command if later), and counts polls, polls with no ready endpoint, and polls whose
  selector or a ready endpoint is the preview's pod hash. The abort is timed from the FAILED
  line to the Rollout's `status.abort`, to the preview ReplicaSet scaled to zero and to its
  last pod gone, and to the Rollout Healthy on the stable hash.

Prints one line per figure: the median and every round. No test asserts these figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import secrets
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench_common import REPO

sys.path.insert(0, str(REPO))
from autodevhub_cli.core.adapters.kube import Kube, ObjectRef
from autodevhub_cli.core.kinds import waits
from autodevhub_cli.core.targets.kubernetes import load_documents
from autodevhub_cli.core.targets.readiness import State, readiness
from tests.deploy import local_cluster
from tests.deploy.kube_cluster import Cluster, project_copy

CLI = str(Path(sysconfig.get_path("scripts")) / "autodevhub")
POLL_SECONDS = 0.05
STEP_LINE = re.compile(r"^\[\s*([\d.]+)s\] ([\w-]+): (.*)$")
BAD_CHECK = "bad api"
BAD_CHECK_SET = f"smoke.checks=[{{name: {BAD_CHECK}, component: backend, path: /api/nope}}]"
EXTRA_SETS: list[str] = []  # this script's --set, passed to every deploy
NAN = float("nan")

# --- the stub the smoke checks reach ------------------------------------------------------------


class StubHandler(BaseHTTPRequestHandler):
    """Answers the project's smoke checks (probes, the page, the story round trip, the latency
    check) like a healthy release; `/api/nope` is 404, the bad release's check."""

    def _answer(self, status: int, body: bytes = b"", kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/api/nope"):
            self._answer(404, b'{"detail": "Not Found"}')
        elif self.path == "/":
            self._answer(200, b"<html><body>bench</body></html>", "text/html")
        else:
            self._answer(200, json.dumps({"status": "done", "stories": [{"id": 1}]}).encode())

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(202, b'{"id": "bench"}')

    def do_DELETE(self) -> None:
        self._answer(204)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_stub() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# --- the deploy process -------------------------------------------------------------------------


@dataclass
class Line:
    """One line the deploy printed: when it arrived, the CLI's own stamp, step and message."""

    at: float
    stamp: float | None
    step: str
    message: str


@dataclass
class Run:
    """A finished deploy: exit code, its lines, when it started and ended."""

    code: int
    lines: list[Line]
    started: float
    ended: float
    stdout: str

    def first(self, step: str, contains: str = "", after: float = 0.0) -> float:
        """When the first `step` line containing `contains` after `after` arrived."""
        for line in self.lines:
            if line.at > after and line.step == step and contains in line.message:
                return line.at
        sys.exit(f"no `{step}: {contains}` line after {after}:\n{self.text()}")

    def text(self) -> str:
        return "\n".join(f"{line.step}: {line.message}" for line in self.lines)


def deploy(cluster: Cluster, env: str, *args: str) -> Run:
    """`autodevhub deploy` as its own process, with what `Cluster.deploy` runs in-process."""
    mark = f"components.backend.env.RELEASE_MARK={cluster.mark or 'none'}"
    cmd = [CLI, "deploy", "--env", env, "--skip-build", "--timeout", "60", "--set", mark, *args]
    for value in EXTRA_SETS:
        cmd += ["--set", value]
    cmd += ["--project-dir", str(cluster.root)]
    process_env = {k: v for k, v in os.environ.items() if not k.startswith("AUTODEVHUB__")}
    process_env.update(cluster.env)
    lines: list[Line] = []
    out: list[str] = []
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, env=process_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    assert proc.stdout is not None and proc.stderr is not None
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: out.append(stdout.read()), daemon=True)
    reader.start()
    for raw in proc.stderr:
        now, text = time.monotonic(), raw.rstrip("\n")
        found = STEP_LINE.match(text)
        if found:
            lines.append(Line(now, float(found[1]), found[2], found[3]))
        else:
            lines.append(Line(now, None, "", text))
    code = proc.wait()
    ended = time.monotonic()
    reader.join(5)
    return Run(code, lines, started, ended, "".join(out))


def expect(run: Run, code: int, what: str) -> None:
    """Stop the benchmark with the deploy's output when it did not end as expected."""
    if run.code != code or (code == 3 and "Rolled back" not in run.text()):
        sys.exit(f"{what}: exit {run.code}, expected {code}\n{run.text()}\n{run.stdout}")


# --- reading the cluster ------------------------------------------------------------------------


class Api:
    """Reads through the client's typed APIs as raw JSON: no model objects, so a poll stays
    cheap (a third of the time of the same read through the dynamic client here)."""

    def __init__(self, kubeconfig: Path) -> None:
        from kubernetes import client

        api_client = Kube.connect(kubeconfig=str(kubeconfig)).api_client
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.discovery = client.DiscoveryV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    @staticmethod
    def _json(call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return dict(json.loads(call(*args, _preload_content=False, **kwargs).data))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _items(self, call: Callable[..., Any], namespace: str, selector: str) -> list[Any]:
        return list((self._json(call, namespace, label_selector=selector) or {}).get("items") or [])

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self._items(self.core.list_namespaced_pod, namespace, selector)

    def replica_sets(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self._items(self.apps.list_namespaced_replica_set, namespace, selector)

    def slices(self, namespace: str, service: str) -> list[dict[str, Any]]:
        call = self.discovery.list_namespaced_endpoint_slice
        return self._items(call, namespace, f"kubernetes.io/service-name={service}")

    def events(self, namespace: str) -> list[dict[str, Any]]:
        return list(
            (self._json(self.core.list_namespaced_event, namespace) or {}).get("items") or []
        )

    def service(self, namespace: str, name: str) -> dict[str, Any]:
        return self._json(self.core.read_namespaced_service, name, namespace) or {}

    def rollout(self, namespace: str, name: str) -> dict[str, Any]:
        call = self.custom.get_namespaced_custom_object
        return self._json(call, "argoproj.io", "v1alpha1", namespace, "rollouts", name) or {}

    def workload(self, ref: ObjectRef) -> dict[str, Any] | None:
        """A Deployment, Job or Rollout as the tool's `readiness` reads it."""
        if ref.kind == "Rollout":
            return self.rollout(ref.namespace, ref.name) or None
        read = {
            "Deployment": self.apps.read_namespaced_deployment,
            "Job": self.batch.read_namespaced_job,
        }[ref.kind]
        return self._json(read, ref.name, ref.namespace)


class Poller(threading.Thread):
    """Calls `sample` every POLL_SECONDS through its own connection; keeps (when the answer
    arrived, the answer)."""

    def __init__(self, kubeconfig: Path, sample: Callable[[Api], Any]) -> None:
        super().__init__(daemon=True)
        self.api = Api(kubeconfig)
        self.sample = sample
        self.samples: list[tuple[float, Any]] = []
        self.errors = 0
        self.halt = threading.Event()

    def run(self) -> None:
        due = time.monotonic()
        while not self.halt.is_set():
            try:
                value = self.sample(self.api)
            except Exception:  # an API hiccup is counted, not fatal to the measurement
                self.errors += 1
            else:
                self.samples.append((time.monotonic(), value))
            due += POLL_SECONDS
            delay = due - time.monotonic()
            if delay > 0:
                self.halt.wait(delay)
            else:
                due = time.monotonic()

    def stop(self) -> None:
        self.halt.set()
        self.join(10)

    def interval_ms(self) -> float:
        """The median time between two answers."""
        times = [at for at, _ in self.samples]
        return statistics.median(b - a for a, b in itertools.pairwise(times)) * 1000


def pod_hash(labels: dict[str, str]) -> str:
    return labels.get("pod-template-hash") or labels.get("rollouts-pod-template-hash") or ""


# (pod template hash, ready, terminating) of each endpoint behind a Service.
Endpoints = list[tuple[str, bool, bool]]


def slice_endpoints(api: Api, namespace: str, service: str) -> Endpoints:
    """The endpoints in `service`'s EndpointSlices."""
    found = []
    for piece in api.slices(namespace, service):
        for endpoint in piece.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            # The controllers name pods `<ReplicaSet>-<suffix>`, the ReplicaSet `backend-<hash>`.
            name = (endpoint.get("targetRef") or {}).get("name", "")
            pod = name.rsplit("-", 2)[-2] if name.count("-") >= 2 else ""
            # The API: an unknown `ready` is to be read as ready.
            ready = conditions.get("ready") is not False
            found.append((pod, ready, bool(conditions.get("terminating"))))
    return found


def pod_endpoints(api: Api, namespace: str, selector: dict[str, str]) -> Endpoints:
    """The endpoints the EndpointSlice controller would write for a Service with `selector`:
    every pod with an IP that has not finished; ready when its Ready condition is True and it
    is not terminating."""
    labels = ",".join(f"{k}={v}" for k, v in selector.items())
    found = []
    for pod in api.pods(namespace, labels):
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if not status.get("podIP") or status.get("phase") in ("Succeeded", "Failed"):
            continue
        terminating = bool(meta.get("deletionTimestamp"))
        ready = not terminating and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        found.append((pod_hash(meta.get("labels") or {}), ready, terminating))
    return found


@dataclass(frozen=True)
class EndpointSource:
    """Where the endpoints behind the backend Service are read: its EndpointSlices, or (where
    the cluster cannot write them) the pods its selector picks."""

    from_slices: bool
    note: str

    def read(self, api: Api, namespace: str, selector: dict[str, str]) -> Endpoints:
        if self.from_slices:
            return slice_endpoints(api, namespace, "backend")
        return pod_endpoints(api, namespace, selector)


def endpoint_source(api: Api, namespace: str) -> EndpointSource:
    """The slices if the backend Service's hold an endpoint within 5 s of a deploy, else the
    pods, with the controller's complaint."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if slice_endpoints(api, namespace, "backend"):
            return EndpointSource(True, "endpoints read from the Service's EndpointSlices")
        time.sleep(0.2)
    why = "no event says why"
    for event in api.events(namespace):
        if event.get("reason") == "FailedToUpdateEndpointSlices":
            why = str(event.get("message", "")).split(": ")[-1].rstrip("]")
    note = f"endpoints derived from the pods the Service selects (its EndpointSlices: {why})"
    return EndpointSource(False, note)


@dataclass(frozen=True)
class ReplicaCount:
    """A ReplicaSet's spec.replicas, status.replicas and status.readyReplicas."""

    wanted: int = 0
    current: int = 0
    ready: int = 0

    @property
    def all_ready(self) -> bool:
        return self.wanted >= 1 and self.ready == self.wanted


def replica_sets(api: Api, namespace: str, selector: str) -> dict[str, ReplicaCount]:
    """Pod template hash -> replica counts of the ReplicaSets `selector` picks."""
    found = {}
    for rs in api.replica_sets(namespace, selector):
        spec, status = rs.get("spec") or {}, rs.get("status") or {}
        found[pod_hash(rs["metadata"].get("labels") or {})] = ReplicaCount(
            wanted=spec.get("replicas", 0),
            current=status.get("replicas", 0),
            ready=status.get("readyReplicas", 0),
        )
    return found


def ready_hashes(endpoints: Endpoints) -> list[str]:
    return [pod for pod, ready, _ in endpoints if ready]


def all_ready(refs: list[ObjectRef]) -> Callable[[Api], bool]:
    """The tool's own verdict (`readiness`) on every workload: all READY."""

    def sample(api: Api) -> bool:
        for ref in refs:
            live = api.workload(ref)
            if live is None or readiness(live).state is not State.READY:
                return False
        return True

    return sample


def first_at(samples: list[tuple[float, Any]], after: float, test: Callable[[Any], bool]) -> float:
    """When the first sample after `after` passing `test` arrived (nan when none did)."""
    for at, value in samples:
        if at > after and test(value):
            return at
    return NAN


def selector_of(obj: dict[str, Any]) -> str:
    """A workload's `spec.selector.matchLabels` as a label selector."""
    return ",".join(f"{k}={v}" for k, v in obj["spec"]["selector"]["matchLabels"].items())


def tag() -> str:
    return "c-" + secrets.token_hex(8)


# --- the two cases ------------------------------------------------------------------------------


@dataclass
class Figures:
    """Values per figure name (one per round) with their unit; notes said once."""

    values: dict[str, tuple[str, list[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, value: float, unit: str = "s") -> None:
        self.values.setdefault(name, (unit, []))[1].append(value)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def show(self, title: str) -> None:
        for text in self.notes:
            print(f"{title}: {text}")
        for name, (unit, values) in self.values.items():
            shown = "{:.2f}" if unit == "s" else "{:.0f}"
            runs = ", ".join(shown.format(v) for v in values)
            median = shown.format(statistics.median(values))
            print(f"{title}: {name}: median {median}{' ' + unit if unit else ''}  [{runs}]")
        sys.stdout.flush()


@contextmanager
def fresh_cluster(kubeconfig: Path, stub: str) -> Iterator[Cluster]:
    """A project copy wired to a namespace of its own (deleted afterwards), checks to `stub`."""
    with tempfile.TemporaryDirectory(prefix="kube-rollback-bench-") as folder:
        cluster = Cluster(
            project_copy(Path(folder)), kubeconfig, None, {"base": stub, "backend": stub}
        )
        try:
            yield cluster
        finally:
            cluster.kube.delete(ObjectRef("v1", "Namespace", "", cluster.ns))


def rolling_round(kubeconfig: Path, stub: str, figures: Figures) -> None:
    """A good staging release, then a bad one rolled back: see the module docstring."""
    with fresh_cluster(kubeconfig, stub) as cluster:
        cluster.record_build("staging", good := tag())
        expect(deploy(cluster, "staging"), 0, "the good staging release")
        ns, api = cluster.ns, Api(kubeconfig)
        service = cluster.obj("Service", "backend")
        live = cluster.obj("Deployment", "backend")
        assert service is not None and live is not None
        match = selector_of(live)
        sets = replica_sets(api, ns, match)
        assert len(sets) == 1, f"one backend ReplicaSet after the first release: {sets}"
        previous = next(iter(sets))
        source = endpoint_source(api, ns)
        figures.note(source.note)

        def backend(api: Api) -> dict[str, Any]:
            endpoints = source.read(api, ns, service["spec"]["selector"])
            return {"endpoints": endpoints, "sets": replica_sets(api, ns, match)}

        def serving(sample: dict[str, Any]) -> bool:
            """The previous ReplicaSet all ready; the ready endpoints its pods only, all of them."""
            ready = ready_hashes(sample["endpoints"])
            rs: ReplicaCount = sample["sets"].get(previous, ReplicaCount())
            return rs.all_ready and ready.count(previous) == len(ready) == rs.wanted

        def clean(sample: dict[str, Any]) -> bool:
            """Serving, and no endpoint of another version left, not even a terminating one."""
            return serving(sample) and all(h == previous for h, _, _ in sample["endpoints"])

        release = cluster.releases("staging")[-1]
        manifests = cluster.root / "manifests.yaml"
        manifests.write_text(cluster.release_file("staging", release["id"], "manifests.yaml"))
        refs = [ObjectRef.of(d) for d in load_documents(manifests) if waits(d["kind"])]
        backend_poll = Poller(kubeconfig, backend)
        workloads_poll = Poller(kubeconfig, all_ready(refs))
        cluster.record_build("staging", tag())
        backend_poll.start()
        workloads_poll.start()
        run = deploy(cluster, "staging", "--set", BAD_CHECK_SET)
        limit = time.monotonic() + 30
        while time.monotonic() < limit and not any(
            at > run.ended and clean(v) for at, v in backend_poll.samples
        ):
            time.sleep(0.2)
        backend_poll.stop()
        workloads_poll.stop()
        expect(run, 3, "the bad staging release")
        restored = cluster.obj("Deployment", "backend")
        assert restored is not None and good in json.dumps(restored["spec"]["template"])

        failed = run.first("smoke", f"{BAD_CHECK}: FAILED")
        back = run.first("rollback", "rolling back to release", after=failed)
        reapplied = run.first("wait", after=back)
        rechecked = run.first("smoke", after=back)
        last_apply = max(x.at for x in run.lines if x.step == "apply" and x.at < reapplied)
        samples = backend_poll.samples
        ready = first_at(workloads_poll.samples, reapplied, bool)
        window = [v for at, v in samples if run.started <= at <= run.ended]
        add = figures.add
        add(
            "failed check -> previous ReplicaSet scaled up again",
            first_at(samples, failed, lambda v: v["sets"].get(previous, ReplicaCount()).wanted)
            - failed,
        )
        add(
            "failed check -> previous ReplicaSet's pods all ready",
            first_at(samples, failed, lambda v: v["sets"].get(previous, ReplicaCount()).all_ready)
            - failed,
        )
        add("failed check -> previous version serving", first_at(samples, failed, serving) - failed)
        add(
            "failed check -> no endpoint of the bad version left",
            first_at(samples, failed, clean) - failed,
        )
        add("failed check -> command done (restored release checked)", run.ended - failed)
        add("failed check -> `rolling back` line", back - failed)
        add("re-apply: `rolling back` line -> first `wait` line", reapplied - back)
        add("  of which the last apply and the prune listing", reapplied - last_apply)
        add("every workload ready -> the tool's next step", rechecked - max(ready, reapplied))
        add("whole bad deploy", run.ended - run.started)
        add("polls of the backend Service during the bad deploy", len(window), "")
        add(
            "  with no ready endpoint",
            sum(1 for v in window if not ready_hashes(v["endpoints"])),
            "",
        )
        add("  median interval between polls", backend_poll.interval_ms(), "ms")
        add("poll errors", backend_poll.errors + workloads_poll.errors, "")


def blue_green_round(kubeconfig: Path, stub: str, figures: Figures) -> None:
    """A promoted good prod release, then a bad one whose preview check fails."""
    with fresh_cluster(kubeconfig, stub) as cluster:
        cluster.record_build("prod", good := tag())
        expect(deploy(cluster, "prod", "--promote"), 0, "the good prod release")
        ns, api = cluster.ns, Api(kubeconfig)
        active = cluster.obj("Service", "backend")
        rollout = cluster.obj("Rollout", "backend")
        assert active is not None and rollout is not None
        stable = active["spec"]["selector"]["rollouts-pod-template-hash"]
        match = selector_of(rollout)
        source = endpoint_source(api, ns)
        figures.note(source.note)

        def service(api: Api) -> tuple[str, Endpoints]:
            selector = (api.service(ns, "backend").get("spec") or {}).get("selector") or {}
            return selector.get("rollouts-pod-template-hash", ""), source.read(api, ns, selector)

        def status(api: Api) -> dict[str, Any]:
            state = api.rollout(ns, "backend").get("status") or {}
            return {
                "abort": bool(state.get("abort")),
                "healthy": state.get("phase") == "Healthy"
                and state.get("currentPodHash") == stable,
                "sets": replica_sets(api, ns, match),
            }

        active_poll, status_poll = Poller(kubeconfig, service), Poller(kubeconfig, status)
        cluster.record_build("prod", tag())
        active_poll.start()
        status_poll.start()
        run = deploy(cluster, "prod", "--promote", "--set", BAD_CHECK_SET)
        expect(run, 3, "the bad prod release")
        failed = run.first("smoke", f"{BAD_CHECK}: FAILED")
        hashes = {h for _, s in status_poll.samples for h in s["sets"]} - {stable}
        assert len(hashes) == 1, f"one preview ReplicaSet, found {hashes}"
        preview = hashes.pop()

        def scaled_down(sample: dict[str, Any]) -> bool:
            return bool(sample["sets"].get(preview, ReplicaCount()).wanted == 0)

        def pods_gone(sample: dict[str, Any]) -> bool:
            return bool(sample["sets"].get(preview, ReplicaCount()).current == 0)

        limit = time.monotonic() + 90  # room for abortScaleDownDelaySeconds and the like
        while time.monotonic() < limit and not any(
            at > failed and pods_gone(s) for at, s in status_poll.samples
        ):
            time.sleep(0.2)
        status_poll.stop()
        down = first_at(status_poll.samples, failed, scaled_down)
        end = run.ended if math.isnan(down) else max(run.ended, down)
        while not active_poll.samples or active_poll.samples[-1][0] < end:
            time.sleep(0.1)
        active_poll.stop()
        rollout = cluster.obj("Rollout", "backend")
        assert rollout is not None and good in json.dumps(rollout["spec"]["template"])

        window = [v for at, v in active_poll.samples if run.started <= at <= end]
        statuses = status_poll.samples
        add = figures.add
        add("polls of the active Service, deploy start -> end of the abort", len(window), "")
        add("  with no ready endpoint", sum(1 for _, e in window if not ready_hashes(e)), "")
        add(
            "  selecting the preview's pod hash",
            sum(1 for c, e in window if c == preview or preview in ready_hashes(e)),
            "",
        )
        add(
            "  selecting anything but the stable hash", sum(1 for c, _ in window if c != stable), ""
        )
        add("  median interval between polls", active_poll.interval_ms(), "ms")
        add("poll window", end - run.started)
        add(
            "failed check -> Rollout status.abort set",
            first_at(statuses, failed, lambda s: s["abort"]) - failed,
        )
        add(
            "failed check -> Rollout Healthy on the stable hash",
            first_at(statuses, failed, lambda s: s["healthy"]) - failed,
        )
        add("failed check -> preview ReplicaSet scaled to 0", down - failed)
        add("failed check -> last preview pod gone", first_at(statuses, failed, pods_gone) - failed)
        add("failed check -> command done (restored release checked)", run.ended - failed)
        add("whole bad deploy", run.ended - run.started)
        add("poll errors", active_poll.errors + status_poll.errors, "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=("rolling", "blue-green"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    options = parser.parse_args(argv)
    EXTRA_SETS.extend(options.set)
    kubeconfig, why = local_cluster.kubeconfig()
    if kubeconfig is None:
        sys.exit(why)
    server, stub = start_stub()
    try:
        cases = {"rolling (staging Deployment)": rolling_round}
        cases["blue-green (prod Rollout)"] = blue_green_round
        for title, round_ in cases.items():
            if options.only and not title.startswith(options.only):
                continue
            figures = Figures()
            for _ in range(options.rounds):
                round_(kubeconfig, stub, figures)
            figures.show(title)
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
