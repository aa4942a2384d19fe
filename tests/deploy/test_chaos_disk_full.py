"""Chaos drill: no room for a record.

The release history lives in the target (Secrets in the namespace), so a full disk on the
machine that deploys can lose none of it; what that machine still writes is a temporary copy of
the files a release applies, and caches. The drills, each for real (no mock of the write):

- the local records layer (build records, caches) on a filesystem of a couple of MiB (tmpfs
  where this machine lets the test mount one, else a loop-mounted ext4 image, else skipped with
  both reasons), filled by a filler file: the old record stays byte-identical, no temporary
  file is left, the error names the file and says to free space on that filesystem;
- the project's `.autodevhub/` on such a full filesystem: the deploy works, nothing is lost;
- the temporary folder full: the deploy stops before applying, naming the file;
- the namespace's Secret quota used up (a ResourceQuota): the new release cannot be recorded,
  so nothing is applied, the history is unchanged and `status` reads it; once there is room
  the next deploy works;
- the store refusing the record that says a release passed (a ValidatingAdmissionPolicy on the
  real API server): the release runs, and the error says its record could not say so.

Why kwok nodes are enough here (for the Kubernetes drills): what runs out is on the machine that
deploys (its `.autodevhub/`, its temporary folder) or in the API server (a ResourceQuota on
Secrets, a ValidatingAdmissionPolicy on the release Secrets), never on a node. The drills assert
the error paragraph and exit code, the history, and the backend Deployment's generation and
RELEASE_MARK, all read from the CLI and the API; the deploys that succeed need their pods only
to be Ready (the condition kwok sets and the Deployment controller reads), and their smoke
checks reach the real backend and nginx on 127.0.0.1, not the pods.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from autodevhub_cli.core.adapters.kube import ObjectRef
from autodevhub_cli.core.errors import RecordError, SmokeCheckError, reported
from autodevhub_cli.core.records import write_json
from tests.deploy.kube_cluster import Cluster

SIZE = 2 * 1024 * 1024  # room for a few records
ENV = "staging"


# --- the tiny filesystem -------------------------------------------------------------------


def _run(*command: str) -> str | None:
    """None when the command worked, else what it said."""
    done = subprocess.run(command, capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stderr or done.stdout).strip() or "failed"


def _mount(kind: str, folder: Path, work: Path) -> str | None:
    """Mount a SIZE-byte filesystem of `kind` on `folder`; None when it worked, else why not."""
    if kind == "tmpfs":
        return _run("mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0755", "tmpfs", str(folder))
    image = work / "state.ext4"
    with image.open("wb") as handle:
        handle.truncate(SIZE)
    # -m 0: no blocks reserved for root, who runs this test where it can mount at all.
    return _run("mkfs.ext4", "-q", "-F", "-m", "0", str(image)) or _run(
        "mount", "-o", "loop", str(image), str(folder)
    )


@contextmanager
def tiny_filesystem(folder: Path, work: Path, kinds: tuple[str, ...]) -> Iterator[str]:
    """`folder` on a small filesystem of its own (the first of `kinds` this machine mounts)."""
    folder.mkdir(parents=True, exist_ok=True)
    problems = []
    for kind in kinds:
        problem = _mount(kind, folder, work)
        if problem is None:
            break
        problems.append(f"{kind}: {problem}")
    else:
        pytest.skip(
            f"cannot mount a small filesystem here (uid {os.geteuid()}): " + "; ".join(problems)
        )
    try:
        yield kind
    finally:
        if _run("umount", str(folder)) is not None:
            _run("umount", "-l", str(folder))


def free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def fill(folder: Path, leave_blocks: int = 0) -> Path:
    """A filler file that takes every free block of the filesystem holding `folder`, but
    `leave_blocks` (room for a small record, not for a release's rendered output)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for chunk in (1 << 20, 4096, 512, 1):
            while True:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
        assert free_bytes(folder) == 0
        if leave_blocks:
            block = os.statvfs(folder).f_frsize
            blocks = -(-os.fstat(fd).st_size // block)
            os.ftruncate(fd, (blocks - leave_blocks) * block)
        os.fsync(fd)
    finally:
        os.close(fd)
    block = os.statvfs(folder).f_frsize
    assert leave_blocks * block <= free_bytes(folder) < (leave_blocks + 1) * block
    return filler


def leftovers(folder: Path) -> list[Path]:
    """Temporary files of an atomic write (`.release.json.x1y2`) left behind."""
    return [p for p in folder.rglob(".*") if p.is_file()]


def error_paragraph(err: str) -> str:
    """The error the CLI printed, checked to be one paragraph at the end, with no traceback."""
    assert "Traceback" not in err and "Unexpected error" not in err, err
    lines = err.rstrip("\n").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Error: ")]
    assert starts, f"no error message in:\n{err}"
    assert starts[-1] == len(lines) - 1, f"more than one paragraph:\n{err}"
    return lines[-1].removeprefix("Error: ")


# --- the records layer ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tmpfs", "ext4"])
def test_record_write_on_a_full_filesystem_keeps_the_old_record(tmp_path: Path, kind: str) -> None:
    state = tmp_path / "state"
    with tiny_filesystem(state, tmp_path, (kind,)):
        record = state / "releases" / ENV / "r1" / "release.json"
        write_json(record, {"id": "r1", "status": "deployed"})
        before = record.read_bytes()
        filler = fill(state)
        with pytest.raises(RecordError) as caught:
            write_json(record, {"id": "r1", "status": "superseded", "padding": "x" * 8192})
        error = caught.value
        assert error.path == record and error.errno == errno.ENOSPC
        assert error.filesystem == state and error.exit_code == 1
        text = str(error)
        assert str(record) in text and "No space left on device" in text
        assert f"Free space on the filesystem mounted at {state}" in text
        assert record.read_bytes() == before and json.loads(before)["status"] == "deployed"
        assert leftovers(state) == []
        # A record in a folder that does not exist yet: the folder is what cannot be made.
        with pytest.raises(RecordError) as nested:
            write_json(state / "releases" / ENV / "r2" / "deep" / "release.json", {"id": "r2"})
        assert "No space left on device" in str(nested.value)
        filler.unlink()
        write_json(record, {"id": "r1", "status": "superseded"})
        assert json.loads(record.read_text())["status"] == "superseded"


def test_a_failure_whose_record_cannot_be_written_is_reported_first(tmp_path: Path) -> None:
    """The disk stays full while a failure is being recorded: the user sees that failure,
    its exit code, and that recording it failed (what the CLI prints, from `reported`)."""
    state = tmp_path / "state"
    with tiny_filesystem(state, tmp_path, ("tmpfs", "ext4")):
        record = state / "release.json"
        write_json(record, {"status": "pending"})
        fill(state)
        with pytest.raises(RecordError) as caught:
            try:
                raise SmokeCheckError("smoke checks failed: page")
            except SmokeCheckError:
                write_json(record, {"status": "failed", "padding": "x" * 8192})
        message, code = reported(caught.value)
        assert code == SmokeCheckError.exit_code
        assert message.startswith("smoke checks failed: page Recording that failed too: ")
        assert f"Could not write {record}: No space left on device." in message
        assert message.endswith("then run the command again.")


# --- the deploy drills ---------------------------------------------------------------------


def release_mark(cluster: Cluster) -> str:
    """The RELEASE_MARK the backend Deployment in the cluster runs with."""
    deployment = cluster.obj("Deployment", "backend")
    assert deployment is not None
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return str(next(e["value"] for e in env if e["name"] == "RELEASE_MARK"))


def first_release(cluster: Cluster) -> dict[str, Any]:
    """A first deploy that succeeds."""
    cluster.record_build(ENV, "c-000000000000d1f1")
    code, _, err = cluster.deploy(ENV)
    assert code == 0, err
    (first,) = cluster.releases(ENV)
    assert first["status"] == "deployed"
    return first


def assert_serves_first(cluster: Cluster, first: dict[str, Any], generation: int) -> None:
    """The cluster runs the first release, untouched, and `status` reads it as serving."""
    after = cluster.obj("Deployment", "backend")
    assert after is not None and after["metadata"]["generation"] == generation
    assert release_mark(cluster) == "c-000000000000d1f1"
    code, out, err = cluster.cli("status", "--env", ENV, "--output", "json")
    assert code == 0, err
    assert json.loads(out)["current"]["id"] == first["id"]


def deploy_again(cluster: Cluster, tag: str) -> None:
    cluster.record_build(ENV, tag)
    code, _, err = cluster.deploy(ENV)
    assert code == 0, err
    assert cluster.releases(ENV)[-1]["status"] == "deployed"
    assert release_mark(cluster) == tag


@pytest.mark.k8s
@pytest.mark.browser
def test_a_full_disk_under_the_project_state_folder_loses_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    """`.autodevhub/` holds no history any more: on a full filesystem the deploys go on."""
    folder = cluster.root / ".autodevhub"
    with tiny_filesystem(folder, tmp_path, ("tmpfs", "ext4")):
        first = first_release(cluster)
        cluster.record_build(ENV, "c-000000000000d1f2")
        fill(folder)
        code, _, err = cluster.deploy(ENV)
        assert code == 0, err
        assert [r["status"] for r in cluster.releases(ENV)] == ["deployed", "deployed"]
        assert cluster.releases(ENV)[0]["id"] == first["id"]
        assert release_mark(cluster) == "c-000000000000d1f2"


@pytest.mark.k8s
@pytest.mark.browser
def test_a_full_temporary_folder_stops_the_deploy_before_applying(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The files a release applies are handed to the target from a temporary copy: with no
    room for it, nothing is applied and the error names the file and the filesystem."""
    first = first_release(cluster)
    deployment = cluster.obj("Deployment", "backend")
    assert deployment is not None
    scratch = tmp_path / "tmp"
    with tiny_filesystem(scratch, tmp_path, ("tmpfs", "ext4")):
        monkeypatch.setattr(tempfile, "tempdir", str(scratch))
        filler = fill(scratch)
        code, _, err = cluster.deploy(ENV, "--set", "components.backend.env.EXTRA=1")
        monkeypatch.undo()
        message = error_paragraph(err)
        assert code == 1, err
        assert str(scratch) in message and "No space left on device" in message, message
        assert "so it was not applied" in message, message
        assert f"Free space on the filesystem mounted at {scratch}" in message
        assert_serves_first(cluster, first, deployment["metadata"]["generation"])
        assert cluster.releases(ENV)[-1]["status"] == "failed", "the cluster's record says so"
        filler.unlink()
    deploy_again(cluster, "c-000000000000d1f3")


@pytest.mark.k8s
@pytest.mark.browser
def test_a_secret_quota_used_up_stops_the_deploy_before_applying(cluster: Cluster) -> None:
    """The namespace may hold no more Secrets: the new release cannot be recorded, so nothing
    is applied, and the history is unchanged."""
    first = first_release(cluster)
    deployment = cluster.obj("Deployment", "backend")
    assert deployment is not None
    count = len(cluster.objs("Secret"))
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-more-secrets", "namespace": cluster.ns},
        "spec": {"hard": {"count/secrets": str(count)}},
    }
    cluster.kube.create(quota)
    cluster.wait(
        "the quota to count",
        lambda: ((cluster.kube.get(ObjectRef.of(quota)) or {}).get("status") or {}).get("used"),
    )
    code, _, err = cluster.deploy(ENV, "--set", "components.backend.env.EXTRA=1")
    message = error_paragraph(err)
    assert code == 1, err
    assert "exceeded quota" in message and "no-more-secrets" in message, message
    assert "could not be started, so nothing was applied" in message, message
    assert f"namespace {cluster.ns!r}" in message, message
    assert [r["id"] for r in cluster.releases(ENV)] == [first["id"]]
    assert_serves_first(cluster, first, deployment["metadata"]["generation"])
    cluster.kube.delete(ObjectRef.of(quota))
    deploy_again(cluster, "c-000000000000d1f3")


@pytest.mark.k8s
@pytest.mark.browser
def test_a_store_that_refuses_the_final_record(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API server refuses the write that marks the release deployed, right after it was
    applied and checked: it runs, and the error says its record could not say so."""
    from autodevhub_cli.core.targets.kubernetes import KubernetesTarget

    first_release(cluster)
    name = f"{cluster.ns}-refuse-records"
    admission = "admissionregistration.k8s.io/v1"
    policy = {
        "apiVersion": admission,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["UPDATE"],
                        "resources": ["secrets"],
                    }
                ]
            },
            "validations": [
                {
                    "expression": "object.type != 'autodevhub.io/release.v1' || "
                    "object.metadata.labels['autodevhub.io/status'] != 'deployed'",
                    "message": "the release store is full (test policy)",
                }
            ],
        },
    }
    binding = {
        "apiVersion": admission,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": cluster.ns}}
            },
        },
    }
    # A Secret of the store's type, to see when the API server enforces the policy (its
    # admission cache follows the policy's creation and deletion within a moment).
    probe = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "autodevhub.io/release.v1",
        "metadata": {"name": "probe", "namespace": cluster.ns, "labels": {}},
    }
    cluster.kube.create(probe)

    def allowed() -> bool:
        try:
            cluster.patch_as(
                "test",
                "Secret",
                "probe",
                {"metadata": {"labels": {"autodevhub.io/status": "deployed"}}},
            )
        except Exception:
            return False
        cluster.patch_as("test", "Secret", "probe", {"metadata": {"labels": None}})
        return True

    applied: list[bool] = []
    real_apply = KubernetesTarget.apply

    # The one moment between applying and recording is inside the deploy's process; the apply
    # and the refused write that follows are real.
    def apply_then_refuse(self: KubernetesTarget, rendered: Path, timeout: float) -> None:
        real_apply(self, rendered, timeout)
        cluster.kube.create(policy)
        cluster.kube.create(binding)
        cluster.wait("the policy to hold", lambda: not allowed())
        applied.append(True)

    monkeypatch.setattr(KubernetesTarget, "apply", apply_then_refuse)
    try:
        cluster.record_build(ENV, "c-000000000000d1f2")
        code, _, err = cluster.deploy(ENV)
    finally:
        monkeypatch.undo()
        for kind in ("ValidatingAdmissionPolicyBinding", "ValidatingAdmissionPolicy"):
            cluster.kube.delete(ObjectRef(admission, kind, "", name))
    message = error_paragraph(err)
    assert code == 1, err
    assert applied, "the deploy never reached the apply"
    second = cluster.releases(ENV)[-1]
    assert "the release store is full (test policy)" in message, message
    assert f"Release {second['id']}" in message and "was applied" in message, message
    assert "could not say so" in message, message
    assert release_mark(cluster) == "c-000000000000d1f2"
    assert second["status"] == "pending"
    cluster.wait("the policy to go", allowed)
    deploy_again(cluster, "c-000000000000d1f3")
    assert [r["status"] for r in cluster.releases(ENV)] == ["deployed", "aborted", "deployed"]
