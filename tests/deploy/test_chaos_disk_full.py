"""Chaos drill: the disk fills up while a release record is being written.

The project's state folder (`.autodevhub/`) is mounted on a filesystem of its own, a couple of
MiB: tmpfs where this machine lets the test mount one, else a loop-mounted ext4 image, else the
test is skipped with both reasons. A filler file then takes every free block, so the next record
write meets ENOSPC for real (no mock of the write). What must hold: the deploy stops with one
paragraph that names the file it could not write and says to free space on that filesystem, and
says what happened to the cluster; the records already written stay whole and byte-identical;
no temporary file is left; `status` still reads the history; once the space is back, the next
deploy works.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from autodevhub_cli.core.errors import RecordError, SmokeCheckError, reported
from autodevhub_cli.core.lock import DeployLock
from autodevhub_cli.core.records import write_json
from tests.deploy.kube_cluster import Cluster

SIZE = 2 * 1024 * 1024  # room for a few releases of the project's rendered output
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


def blocks_for_a_record(folder: Path) -> int:
    """Blocks a new release folder with one small record takes on this filesystem (tmpfs
    charges a folder nothing, ext4 a block)."""
    before = free_bytes(folder)
    probe = folder / "probe"
    probe.mkdir()
    (probe / "release.json").write_text("x" * 512)
    used = before - free_bytes(folder)
    (probe / "release.json").unlink()
    probe.rmdir()
    return max(1, -(-used // os.statvfs(folder).f_frsize))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


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


def test_the_compose_lock_on_a_full_filesystem_is_a_clear_error(tmp_path: Path) -> None:
    """Compose's deploy lock is a file under `.autodevhub/locks`: on a full disk taking it fails
    with the file and what to do, and nothing is held afterwards."""
    state = tmp_path / "state"
    with tiny_filesystem(state, tmp_path, ("tmpfs", "ext4")):
        filler = fill(state)
        path = state / "locks" / f"{ENV}.lock"
        with pytest.raises(RecordError) as caught:
            DeployLock(path, ENV, command="deploy").acquire()
        text = str(caught.value)
        assert str(path) in text and "No deploy was started" in text
        assert "Free space on the filesystem" in text
        filler.unlink()
        with DeployLock(path, ENV, command="deploy"):
            assert json.loads(path.read_text())["command"] == "deploy"


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


# --- the deploy drill ----------------------------------------------------------------------


@pytest.fixture()
def state(cluster: Cluster, tmp_path: Path) -> Iterator[Path]:
    """The cluster project's `.autodevhub/` on a tiny filesystem."""
    folder = cluster.root / ".autodevhub"
    with tiny_filesystem(folder, tmp_path, ("tmpfs", "ext4")):
        yield folder


def release_mark(cluster: Cluster) -> str:
    """The RELEASE_MARK the backend Deployment in the cluster runs with."""
    deployment = cluster.obj("Deployment", "backend")
    assert deployment is not None
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return str(next(e["value"] for e in env if e["name"] == "RELEASE_MARK"))


def first_release(cluster: Cluster, state: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A first deploy that succeeds, and a copy of its records."""
    cluster.record_build(ENV, "c-000000000000d1f1")
    code, _, err = cluster.deploy(ENV)
    assert code == 0, err
    (first,) = cluster.releases(ENV)
    assert first["status"] == "deployed"
    records = snapshot(state / "releases" / ENV / first["id"])
    assert {"release.json", "manifests.yaml", "environment.json"} <= set(records)
    return first, records


def assert_history_intact(
    cluster: Cluster, state: Path, first: dict[str, Any], records: dict[str, bytes]
) -> None:
    """The first release's records are byte-identical, valid, and `status` still reads them."""
    folder = state / "releases" / ENV / first["id"]
    assert snapshot(folder) == records
    for name in ("release.json", "environment.json"):
        json.loads((folder / name).read_text())
    assert leftovers(state) == []
    code, out, err = cluster.cli("status", "--env", ENV, "--output", "json")
    assert code == 0, err
    assert json.loads(out)["current"]["id"] == first["id"]


def deploy_after_space_is_back(cluster: Cluster, filler: Path) -> None:
    filler.unlink()
    cluster.record_build(ENV, "c-000000000000d1f3")
    code, _, err = cluster.deploy(ENV)
    assert code == 0, err
    assert cluster.releases(ENV)[-1]["status"] == "deployed"
    assert release_mark(cluster) == "c-000000000000d1f3"
    code, out, _ = cluster.cli("status", "--env", ENV, "--output", "json")
    assert code == 0 and json.loads(out)["current"]["id"] == cluster.releases(ENV)[-1]["id"]


@pytest.mark.k8s
@pytest.mark.browser
@pytest.mark.parametrize("room", ["none", "for one record"])
def test_disk_full_before_applying(cluster: Cluster, state: Path, room: str) -> None:
    """No room for the new release's records: nothing is applied, the history is unchanged.

    With no block left, the new release's folder or first record cannot be written; with room
    for that record, it can, but the rendered output it must keep before applying cannot.
    """
    first, records = first_release(cluster, state)
    deployment = cluster.obj("Deployment", "backend")
    assert deployment is not None
    filler = fill(state, leave_blocks=0 if room == "none" else blocks_for_a_record(state))

    # The recorded build stays as it was (no room to write another); a value changes instead.
    code, _, err = cluster.deploy(ENV, "--set", "components.backend.env.EXTRA=1")
    message = error_paragraph(err)
    assert code == 1, err
    folder = state / "releases" / ENV
    assert str(folder) in message and "No space left on device" in message, message
    assert f"Free space on the filesystem mounted at {state}" in message
    if room == "none":
        # No half-made release: no empty folder, no pending record.
        assert sorted(p.name for p in folder.iterdir()) == [first["id"]]
        assert "could not be started, so nothing was applied" in message, message
    else:
        second = cluster.releases(ENV)[-1]
        assert second["id"] != first["id"] and second["status"] == "pending"
        assert str(folder / second["id"] / "manifests.yaml") in message, message
        assert "so it was not applied" in message, message
        assert f"{folder / second['id'] / 'release.json'} could not be written either" in message
    # Honest: the cluster runs the first release, untouched.
    after = cluster.obj("Deployment", "backend")
    assert after is not None
    assert after["metadata"]["generation"] == deployment["metadata"]["generation"]
    assert release_mark(cluster) == "c-000000000000d1f1"
    assert_history_intact(cluster, state, first, records)

    deploy_after_space_is_back(cluster, filler)
    statuses = [r["status"] for r in cluster.releases(ENV)]
    assert statuses == (
        ["deployed", "deployed"] if room == "none" else ["deployed", "aborted", "deployed"]
    )


@pytest.mark.k8s
@pytest.mark.browser
def test_disk_full_after_applying(
    cluster: Cluster, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills while the release is being applied: it runs, and the error says its
    record could not say so."""
    from autodevhub_cli.core.targets.kubernetes import KubernetesTarget

    first, records = first_release(cluster, state)
    filled: list[Path] = []
    real_apply = KubernetesTarget.apply

    # The one moment between applying and recording is inside the deploy's process; the
    # apply and the writes that follow are real.
    def apply_then_fill(self: KubernetesTarget, rendered: Path, timeout: float) -> None:
        real_apply(self, rendered, timeout)
        filled.append(fill(state))

    monkeypatch.setattr(KubernetesTarget, "apply", apply_then_fill)
    cluster.record_build(ENV, "c-000000000000d1f2")
    code, _, err = cluster.deploy(ENV)
    monkeypatch.undo()
    message = error_paragraph(err)
    assert code == 1, err
    assert filled, "the deploy never reached the apply"
    second = cluster.releases(ENV)[-1]
    record = state / "releases" / ENV / second["id"] / "release.json"
    assert str(record) in message and "No space left on device" in message, message
    assert f"Release {second['id']}" in message and "was applied" in message, message
    assert f"Free space on the filesystem mounted at {state}" in message
    # Honest: the cluster runs the new release, and its record is the last one written.
    assert release_mark(cluster) == "c-000000000000d1f2"
    assert second["status"] == "pending"
    assert_history_intact(cluster, state, first, records)

    deploy_after_space_is_back(cluster, filled[0])
    assert [r["status"] for r in cluster.releases(ENV)] == ["deployed", "aborted", "deployed"]
