"""`autodevhub logs` on the real engines, with the `notes` project (tests/fixtures/notes): every
replica of a component, merged, prefixed, secret values masked; a follow that picks up the
containers (Compose) and pods (the real node, a blue-green preview among them) a deploy starts;
`--previous` for a container that crashed; Ctrl-C ending a follow with exit code 0."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.deploy.test_new_project import _cli, notes_on_compose, notes_on_the_real_node
from tests.helpers import Gathered

__all__ = ["notes_on_compose", "notes_on_the_real_node"]  # the fixtures, used by name

# The worker as it runs in these tests: says it started, prints its token (which `logs` must
# mask) and waits; with CRASH_AFTER=N it exits 3 after N seconds.
WORKER = """
  worker:
    command:
      - python3
      - -c
      - |
        import os, sys, time
        print("worker started", flush=True)
        print("token is " + open("/run/secrets/api_token").read().strip(), flush=True)
        crash = float(os.environ.get("CRASH_AFTER") or "inf")
        started = time.monotonic()
        while time.monotonic() - started < crash:
            time.sleep(1)
        print("worker crashing", flush=True)
        sys.exit(3)
    secret_env:
      API_TOKEN: {secret: notes-secrets, key: api-token}
"""


def _with_worker(root: Path, environment: str) -> None:
    """The environment file with the worker's settings above added to its own entry."""
    path = root / "environments" / f"{environment}.yaml"
    text = path.read_text()
    assert "\n  worker:\n" in text, path
    body = "".join(line + "\n" for line in WORKER.splitlines()[2:])
    path.write_text(text.replace("\n  worker:\n", "\n  worker:\n" + body, 1))


class Follow(Gathered):
    """`autodevhub logs ... --follow` as a process of its own, its lines gathered as they come."""

    def __init__(self, root: Path, env: dict[str, str], *args: str) -> None:
        command = [sys.executable, "-m", "autodevhub_cli", "logs", *args, "--follow"]
        super().__init__(
            [*command, "--project-dir", str(root)], {**os.environ, **env, "NO_COLOR": "1"}
        )
        self.notes = self.errors

    def wait_for(self, what: str, seen: Callable[[list[str]], bool], seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while not seen(list(self.lines)):
            assert self.proc.poll() is None, f"the follow ended: {self.notes}"
            assert time.monotonic() < deadline, f"no {what} in {seconds:.0f}s: {self.lines[-20:]}"
            time.sleep(0.2)

    def interrupt_and_notes(self) -> tuple[int, str]:
        """Ctrl-C: the follow ends, its exit code and what it said on stderr."""
        code = self.interrupt(15)
        return code, "\n".join(self.notes)


@pytest.fixture()
def follow() -> Iterator[list[Follow]]:
    started: list[Follow] = []
    yield started
    for f in started:
        f.stop()


def _started(lines: list[str], component: str = "worker") -> set[str]:
    """The replicas (as prefixed) that printed "worker started" (or the API's start line)."""
    words = "worker started" if component == "worker" else "notes api on"
    return {line.split(" | ")[0].strip() for line in lines if line.endswith(words) or words in line}


# --- Compose ---------------------------------------------------------------------------------


def test_logs_on_compose(
    notes_on_compose: tuple[Path, dict[str, str]], tmp_path: Path, follow: list[Follow]
) -> None:
    """Both worker containers' lines, merged and prefixed, the token masked; the API's last
    lines as JSON; a follow that picks up the containers a deploy recreates and adds, ended by
    Ctrl-C; the refusals."""
    root, env = notes_on_compose
    env["NOTES_API_TOKEN"] = "tok-compose-1234"  # what the smoke check sends
    _with_worker(root, "local")
    values = tmp_path / "values.env"
    values.write_text("api-token=tok-compose-1234\n")
    code, _, err = _cli(root, env, "secrets", "set", "--env", "local", "--from-file", str(values))
    assert code == 0, err
    code, _, err = _cli(
        root, env, "deploy", "--env", "local", "--set", "components.worker.replicas=2"
    )
    assert code == 0, err

    code, out, err = _cli(root, env, "logs", "--env", "local", "worker")
    assert code == 0, err
    assert _started(out.splitlines()) == {"worker/1", "worker/2"}, out
    assert "token is ***" in out and "tok-compose-1234" not in out, out

    code, out, err = _cli(root, env, "logs", "--env", "local", "api", "--tail", "3", "-o", "json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert 1 <= len(rows) <= 3, out
    assert {r["component"] for r in rows} == {"api"} and all(r["time"] for r in rows), rows
    assert all(r["replica"].endswith("-api-1") for r in rows), rows

    # Everything, in time order: the migrate task's container is not a replica; the API's
    # start line comes before the lines of the workers, which wait for it to be healthy.
    code, out, err = _cli(root, env, "logs", "--env", "local", "-o", "json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
    assert {r["component"] for r in rows} == {"api", "worker", "web"}

    for args, words in [
        (["nope"], "has no component 'nope' (its components: api, worker, web)"),
        (["--previous"], "--previous reads the container Kubernetes replaced; on compose"),
        (["--since", "5x"], "--since '5x' is not a duration"),
    ]:
        code, out, err = _cli(root, env, "logs", "--env", "local", *args)
        assert code == 2 and words in err and "Traceback" not in err, (args, err)

    f = Follow(root, env, "--env", "local", "worker")
    follow.append(f)
    f.wait_for("two workers", lambda lines: _started(lines) == {"worker/1", "worker/2"})
    before = len(f.lines)
    code, _, err = _cli(
        root,
        env,
        "deploy",
        "--env",
        "local",
        "--set",
        "components.worker.replicas=3",
        "--set",
        "components.worker.env.MARK=two",
    )
    assert code == 0, err
    # The deploy recreated both workers (their env changed) and added a third.
    f.wait_for(
        "three new workers",
        lambda lines: _started(lines[before:]) == {"worker/1", "worker/2", "worker/3"},
    )
    code, notes = f.interrupt_and_notes()
    assert code == 0 and "Traceback" not in notes and "Interrupted" not in notes, notes
    assert "+ worker/3 started" in notes, notes
    assert not any("tok-compose-1234" in line for line in f.lines)

    # A release whose worker crashes at once: the deploy's message carries the container's last
    # lines, as on Kubernetes, with the token masked.
    crash = ["--set", "components.worker.env.CRASH_AFTER=0", "--timeout", "20"]
    code, _, err = _cli(root, env, "deploy", "--env", "local", *crash)
    assert code != 0 and "did not become healthy" in err, err
    assert "worker crashing" in err and "token is ***" in err, err
    assert "tok-compose-1234" not in err and "Traceback" not in err, err


# --- Kubernetes, on the real node --------------------------------------------------------------


def _restarted(kube: object, ns: str, component: str) -> bool:
    """A container of the component's pods has restarted (pods being deleted, such as a failed
    release's, do not count)."""
    pods = kube.list_objects("v1", "Pod", ns, f"app.kubernetes.io/component={component}")  # type: ignore[attr-defined]
    return any(
        int(s.get("restartCount") or 0) > 0
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        for s in (p.get("status") or {}).get("containerStatuses") or []
    )


def test_logs_on_the_real_node(
    notes_on_the_real_node: tuple[Path, dict[str, str], str], tmp_path: Path, follow: list[Follow]
) -> None:
    """Both pods of the blue-green API and of the worker (the token masked); a follow that picks
    up the preview pods a deploy starts, ended by Ctrl-C; `--previous` shows what the worker's
    crashed containers printed."""
    from autodevhub_cli.core.adapters.kube import Kube

    root, env, ns = notes_on_the_real_node
    env["NOTES_API_TOKEN"] = "tok-kube-1234"
    _with_worker(root, "live")
    values = tmp_path / "values.env"
    values.write_text("api-token=tok-kube-1234\n")
    code, _, err = _cli(root, env, "secrets", "set", "--env", "live", "--from-file", str(values))
    assert code == 0, err
    replicas = ["--set", "components.api.replicas=2", "--set", "components.worker.replicas=2"]
    deploy = ["deploy", "--env", "live", "--timeout", "240", *replicas]
    code, _, err = _cli(root, env, *deploy, "--promote")
    assert code == 0, err

    code, out, err = _cli(root, env, "logs", "--env", "live", "api")
    assert code == 0, err
    assert len(_started(out.splitlines(), "api")) == 2, out
    code, out, err = _cli(root, env, "logs", "--env", "live", "worker", "-o", "json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert len({r["replica"] for r in rows if r["line"] == "worker started"}) == 2, rows
    assert all(r["replica"].startswith("worker-") for r in rows), rows
    assert any(r["line"] == "token is ***" for r in rows) and "tok-kube-1234" not in out, out

    # A second release of the API waits as the preview: its new pods' lines come in the follow.
    f = Follow(root, env, "--env", "live", "api")
    follow.append(f)
    f.wait_for("the two API pods", lambda lines: len(_started(lines, "api")) == 2)
    active = _started(f.lines, "api")
    code, _, err = _cli(root, env, *deploy, "--set", "components.api.env.MARK=two")
    assert code == 0 and "is up as the preview" in err, err
    f.wait_for("the preview's pods", lambda lines: len(_started(lines, "api") - active) == 2)
    preview = _started(f.lines, "api") - active
    # Each pod's lines say its role: the serving version's "active", the new one's "preview".
    assert all(pod.endswith(" (active)") for pod in active), active
    assert all(pod.endswith(" (preview)") for pod in preview), preview
    pods = {pod.removesuffix(" (preview)") for pod in preview}
    # Promoted while followed: the follow says the preview's pods are now the active ones.
    code, out, err = _cli(root, env, "promote", "--env", "live")
    assert code == 0, out + err
    promoted = {f"~ {pod} is now active" for pod in pods}
    deadline = time.monotonic() + 60
    while not promoted <= set(f.notes):
        assert time.monotonic() < deadline, f.notes
        time.sleep(0.2)
    code, notes = f.interrupt_and_notes()
    assert code == 0 and "Traceback" not in notes and "Interrupted" not in notes, notes
    assert {f"+ {pod} started (preview)" for pod in pods} <= set(notes.splitlines()), notes

    # A release whose worker crashes at once: the deploy's diagnosis carries the crashed
    # container's last lines with the token masked, and the release before it (a
    # healthy one) serves again.
    code, _, err = _cli(root, env, *deploy, "--set", "components.worker.env.CRASH_AFTER=0")
    assert code != 0 and "Rolled back to release" in err and "The rollback" not in err, err
    assert "worker crashing" in err and "token is ***" in err, err
    assert "tok-kube-1234" not in err and "Traceback" not in err, err

    # A worker that crashes 20 s after it starts: `--previous` reads the container that ended.
    code, _, err = _cli(root, env, *deploy, "--set", "components.worker.env.CRASH_AFTER=20")
    assert code == 0, err
    kube = Kube.connect(kubeconfig=env["AUTODEVHUB__KUBERNETES__KUBECONFIG"])
    deadline = time.monotonic() + 120
    while not _restarted(kube, ns, "worker"):
        assert time.monotonic() < deadline, "no worker container restarted"
        time.sleep(1)
    code, out, err = _cli(root, env, "logs", "--env", "live", "worker", "--previous")
    assert code == 0, err
    assert "worker crashing" in out and "token is ***" in out, out + err
