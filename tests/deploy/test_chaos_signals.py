"""Chaos drill: SIGINT and SIGTERM at each step of a Kubernetes deploy, on the real control plane.

`autodevhub deploy` runs as a child process, as a CI job runs it; the signal goes to that process
(`kill -INT`/`kill -TERM`, what a cancelled CI job or a Kubernetes pod's shutdown sends) the moment
it prints the line that starts the step. Each case asserts that nothing is lost:

- it exits promptly with 128 + the signal's number (130, 143) and one paragraph saying during which
  step it stopped, what serves now and what to do; no traceback;
- the release record of the interrupted deploy is whole JSON marked `interrupted`, the earlier
  records are byte-for-byte what they were;
- the deploy Lease is given back: the next deploy does not wait for it to expire;
- the cluster is consistent: before the switch (render, tasks) the previous release still serves,
  untouched; once apply has begun (apply, smoke, promote) the tool rolls back to it, as a failed
  check does (blue-green: the active Service selects the stable pod hash again);
- the next deploy succeeds and marks the interrupted release aborted.

How each step is made long enough to be hit, legitimately:

- render (~0.2 s of pydantic, Jinja and schema validation) and the rollout wait of apply (~1-3 s
  of controllers and kwok) last far longer than the few milliseconds between the line and the
  signal; nothing is slowed.
- tasks: the migrate Job runs only when its inputs change, so the case adds a migration file, as a
  release with a new migration does. Overriding the command with `sleep` would change nothing:
  kwok runs no process, its `pod-complete` stage marks a Job's pod Succeeded as soon as it runs
  (`scripts/local-cluster.sh`); the Job controller's round trips give ~1-2 s.
- smoke: a check against a local endpoint that holds every request (a hung backend), so the
  signal lands while the checks block in a socket read.
- promote: the switch itself is one patch, ~0.3-2 s with the wait until Argo reports the new
  version active. The signal may land just before or just after Argo moves the active Service;
  either way the tool must end with the stable hash active, which is what the case asserts.

Not covered here: `build` (these deploys reuse a recorded build, `--skip-build`; an interrupted
build takes the same before-the-switch path as render) and `push` (Compose only).

Why kwok nodes are enough here: the signal goes to the tool's process, and every assertion is
about the tool or what the API holds: its exit code, how soon it reacts and exits, its message,
the release records, the Lease, and which template (RELEASE_MARK) serves, with, for blue-green,
the pod hash the active Service selects. kwok shortens the waits (pods Ready at once, the
migrate Job's pod Succeeded without running), which is why each step's length is argued above
rather than taken from the pods. What needs real pods is on the real node: the migration itself
against PostgreSQL (test_staging_runs_on_the_real_node), a rollback after which the good
release's pods are ready again
(test_a_broken_release_on_the_real_node_is_diagnosed_and_rolled_back), promote and abort under
traffic (test_blue_green_on_the_real_node_keeps_every_request_on_the_active_version). Not shown
on real pods: a signal while a real migration runs, and ROLLBACK_SECONDS with real pods starting
in the rollback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from autodevhub_cli.core.adapters.kube import ObjectRef
from tests.deploy import local_cluster
from tests.deploy.kube_cluster import Cluster, active_hash, project_copy
from tests.helpers import HeldEndpoint, default_sigint

pytestmark = [pytest.mark.k8s, pytest.mark.browser]

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
# Before the switch there is nothing to undo: record the release, give the Lease back (two API
# calls), print. Once apply has begun the tool rolls back: one re-apply, wait and smoke check of
# the previous release, ~3-8 s on this control plane. 30 s is Kubernetes' default
# terminationGracePeriodSeconds, what a CI runner pod gets between SIGTERM and SIGKILL.
PROMPT_SECONDS = 5.0
ROLLBACK_SECONDS = 30.0
# From the signal to the tool's first word about it (the rollback starting, or the message): a
# signal held back until a blocking wait returns (a hung request's 10 s timeout, a 1 s poll of
# a rollout) shows here, even when the whole exit still fits in ROLLBACK_SECONDS.
REACT_SECONDS = 2.0
# How long the deploy may take to reach the step's line at all.
REACH_SECONDS = 120.0


@dataclass(frozen=True)
class Step:
    """Where to send the signal: the step the tool must name, the line to send it at, and
    whether the release had begun to switch by then."""

    env: str
    name: str
    line: str
    switched: bool
    label: str = ""
    hung_smoke: bool = False
    new_migration: bool = False

    def __str__(self) -> str:
        return f"{self.env}-{self.label or self.name}"


STEPS = [
    Step("staging", "render", "render: rendering and validating", switched=False),
    Step("staging", "tasks", "tasks: running backend.migrate", switched=False, new_migration=True),
    # The start of apply (the first objects applied), then its rollout wait: every object is
    # applied and the Deployment rolls to the new pods. Blue-green: the preview coming up.
    Step("staging", "apply", "apply: applying and waiting until healthy", switched=True),
    Step("staging", "apply", "wait: Deployment backend", switched=True, label="rollout-wait"),
    Step("staging", "smoke", "smoke: running smoke checks", switched=True, hung_smoke=True),
    Step("prod", "apply", "wait: Rollout backend", switched=True, label="rollout-wait"),
    Step(
        "prod",
        "smoke",
        "smoke: running smoke checks against the preview",
        switched=True,
        hung_smoke=True,
    ),
    Step("prod", "promote", "promote: promoting the preview to active", switched=True),
]


@pytest.fixture(scope="module")
def hung_backend() -> Iterator[HeldEndpoint]:
    made = HeldEndpoint(503)
    yield made
    made.close()


def _environment(
    tmp_path_factory: pytest.TempPathFactory, app: dict[str, str], env: str
) -> Iterator[Cluster]:
    """A namespace of its own with one good release of `env`, kept for the module's cases."""
    kubeconfig, why = local_cluster.kubeconfig()
    if kubeconfig is None:
        pytest.skip(why)
    made = Cluster(project_copy(tmp_path_factory.mktemp(f"chaos-{env}")), kubeconfig, None, app)
    # Fewer objects per apply (a dozen of ~27: dashboards, alerts, backups, NetworkPolicies) keep
    # the 16 cases, each with up to three applies, near three minutes; none of them takes part
    # in a switch or a rollback.
    for part in ("MONITORING", "BACKUPS", "NETWORK_POLICIES"):
        made.env[f"AUTODEVHUB__{part}__ENABLED"] = "false"
    # Every case checks that the records before it are untouched: keep them all.
    made.env["AUTODEVHUB__RELEASES__KEEP"] = "100"
    made.record_build(env, f"c-{env}-baseline")
    code, _, err = made.deploy(env, *_promote(env))
    assert code == 0, err
    yield made
    made.kube.delete(ObjectRef("v1", "Namespace", "", made.ns))


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory, app: dict[str, str]) -> Iterator[Cluster]:
    yield from _environment(tmp_path_factory, app, "staging")


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory, app: dict[str, str]) -> Iterator[Cluster]:
    yield from _environment(tmp_path_factory, app, "prod")


def _promote(env: str) -> list[str]:
    return ["--promote"] if env == "prod" else []


@dataclass(kw_only=True, frozen=True)
class Interrupted:
    """What an interrupted deploy process did: exit code, stderr, and in seconds from the
    signal, when it first said so and when it exited."""

    code: int
    stderr: str
    reacted: float
    exited: float


def interrupt_at(cluster: Cluster, env: str, line: str, signum: int, *args: str) -> Interrupted:
    """Run `autodevhub deploy` as a process (as `Cluster.deploy` runs the CLI) and send it
    `signum` the moment it prints `line`; wait for it to exit."""
    command = [
        sys.executable,
        "-m",
        "autodevhub_cli",
        "deploy",
        "--env",
        env,
        "--skip-build",
        "--timeout",
        "60",
        "--set",
        f"components.backend.env.RELEASE_MARK={cluster.mark}",
        *args,
        "--project-dir",
        str(cluster.root),
    ]
    environ = {**os.environ, **cluster.env}
    environ.pop("AUTODEVHUB_DEBUG", None)
    proc = subprocess.Popen(
        command,
        env=environ,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    lines: list[str] = []
    sent: dict[str, float] = {}

    def read() -> None:
        assert proc.stderr is not None
        for text in proc.stderr:
            lines.append(text)
            if not sent and line in text:
                proc.send_signal(signum)  # from the reader: no hop between seeing and sending
                sent["at"] = time.monotonic()
            elif sent and "reacted" not in sent and ("stopped by" in text or "Interrupted" in text):
                sent["reacted"] = time.monotonic()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + REACH_SECONDS
    while not sent and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if not sent:
        proc.kill()
        proc.wait()
        reader.join(5)
        pytest.fail(f"the deploy never printed {line!r}:\n{''.join(lines)}")
    try:
        code = proc.wait(timeout=ROLLBACK_SECONDS + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        reader.join(5)
        pytest.fail(f"the deploy ignored {signal.Signals(signum).name}:\n{''.join(lines)}")
    exited = time.monotonic() - sent["at"]
    reader.join(10)
    reacted = sent.get("reacted", float("inf")) - sent["at"]
    return Interrupted(code=code, stderr="".join(lines), reacted=reacted, exited=exited)


def _mark(workload: dict[str, Any] | None) -> str | None:
    assert workload is not None
    containers = workload["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in containers[0].get("env", [])}
    return env.get("RELEASE_MARK")


def _serving(cluster: Cluster, env: str) -> dict[str, Any]:
    """What the backend runs now: the rendered mark of its workload, and for blue-green the hash
    the active Service selects."""
    if env == "prod":
        rollout = cluster.obj("Rollout", "backend")
        assert rollout is not None
        return {
            "mark": _mark(rollout),
            "active": active_hash(cluster),
            "current": rollout["status"].get("currentPodHash"),
        }
    deployment = cluster.obj("Deployment", "backend")
    assert deployment is not None
    status = deployment.get("status") or {}
    return {
        "mark": _mark(deployment),
        "generation": deployment["metadata"]["generation"],
        "ready": status.get("observedGeneration") == deployment["metadata"]["generation"]
        and status.get("updatedReplicas") == deployment["spec"]["replicas"]
        and status.get("availableReplicas") == deployment["spec"]["replicas"],
    }


def previous_mark(previous: dict[str, Any], cluster: Cluster, env: str) -> str | None:
    """The RELEASE_MARK the previous good release rendered (from its recorded manifests)."""
    import yaml

    text = cluster.release_file(env, previous["id"], "manifests.yaml")
    kind = "Rollout" if env == "prod" else "Deployment"
    for doc in yaml.safe_load_all(text):
        if doc and doc["kind"] == kind and doc["metadata"]["name"] == "backend":
            return _mark(doc)
    raise AssertionError(f"no {kind} backend in release {previous['id']}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
@pytest.mark.parametrize("step", STEPS, ids=str)
def test_a_signal_at_each_step_loses_nothing(
    step: Step, signum: signal.Signals, request: pytest.FixtureRequest
) -> None:
    cluster: Cluster = request.getfixturevalue(step.env)
    env = step.env
    records_before = {r["id"]: r for r in cluster.releases(env)}
    good = [r for r in records_before.values() if r["status"] == "deployed"]
    previous = good[-1]
    serving_before = _serving(cluster, env)
    token = f"{signum.name.lower()}-{step.label or step.name}"
    args: list[str] = [*_promote(env)]
    if step.hung_smoke:
        hung = request.getfixturevalue("hung_backend")
        which = "preview_urls" if env == "prod" else "urls"
        args += ["--set", f"smoke.{which}.backend={hung.url}"]
    if step.new_migration:
        migration = cluster.root / "service" / "migrations" / "versions" / f"chaos_{token}.py"
        migration.parent.mkdir(parents=True, exist_ok=True)
        migration.write_text(f'"""A new migration ({token}): the migrate task runs."""\n')
    cluster.record_build(env, f"c-{token}")

    result = interrupt_at(cluster, env, step.line, signum, *args)

    name = signum.name
    # Exit code, promptness, and one paragraph that says where it stopped and what serves.
    assert result.code == EXIT_CODES[signum], result.stderr
    assert "Traceback" not in result.stderr and "Unexpected error" not in result.stderr
    assert result.reacted < REACT_SECONDS, f"{result.reacted:.1f}s to react:\n{result.stderr}"
    bound = ROLLBACK_SECONDS if step.switched else PROMPT_SECONDS
    assert result.exited < bound, f"{result.exited:.1f}s to exit:\n{result.stderr}"
    message = result.stderr[result.stderr.rindex("Interrupted: ") :].strip()
    assert "\n" not in message, f"not one paragraph: {message}"
    assert f"by {name} during {step.name}" in message, message
    if step.switched:
        assert f"rolled back to release {previous['id']}" in message, message
    else:
        assert f"release {previous['id']} still serves" in message, message
    assert "deploy again" in message.lower(), message

    # The records: the new one whole and marked interrupted, the earlier ones untouched.
    records_after = cluster.releases(env)  # json.loads of each: a torn file fails here
    assert {r["id"]: r for r in records_after if r["id"] in records_before} == records_before
    new = [r for r in records_after if r["id"] not in records_before]
    assert len(new) == 1, new
    interrupted = new[0]
    assert interrupted["status"] == "interrupted", interrupted
    assert f"{name} during {step.name}" in (interrupted["error"] or ""), interrupted
    assert interrupted["finished_at"], interrupted
    assert interrupted["restored"] == (previous["id"] if step.switched else None), interrupted

    # The Lease is given back at once, not left to expire.
    assert cluster.obj("Lease", f"autodevhub-{env}") is None, "the deploy Lease is still held"

    # The cluster: the previous release serves, untouched or rolled back to.
    serving_after = _serving(cluster, env)
    assert serving_after["mark"] == previous_mark(previous, cluster, env), serving_after
    if env == "prod":
        assert serving_after["active"] == serving_before["active"], (serving_before, serving_after)
        assert serving_after["current"] == serving_before["active"], serving_after
    else:
        assert serving_after["ready"], serving_after
        if not step.switched:
            assert serving_after["generation"] == serving_before["generation"], "it was changed"

    # The next deploy succeeds, without waiting, and closes the interrupted record.
    cluster.record_build(env, f"c-{token}-next")
    code, _, err = cluster.deploy(env, *_promote(env))
    assert code == 0, err
    assert f"release {interrupted['id']} was left unfinished" in err, err
    final = {r["id"]: r for r in cluster.releases(env)}
    assert final[interrupted["id"]]["status"] == "aborted"
    assert list(final.values())[-1]["status"] == "deployed"
    assert _serving(cluster, env)["mark"] == cluster.mark
    if env == "prod":
        rollout = cluster.obj("Rollout", "backend")
        assert rollout is not None
        assert active_hash(cluster) == rollout["status"]["currentPodHash"]
