"""The release history's rules, whatever the target keeps it in: order by creation whatever the
clock does, what serves, what the history limit may delete, the stored form and its errors, and
the import of records an earlier version kept on the local disk.

The backend here keeps each release's stored bytes in a dict, exactly as encoded, so the
encoding is exercised; the backends of the real targets are tested against the real Docker
engine and control plane (tests/deploy/test_state_in_target.py)."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest

from autodevhub_cli.core import releases
from autodevhub_cli.core.errors import StoreError
from autodevhub_cli.core.releases import (
    DEPLOYED,
    FAILED,
    PREVIEW,
    REMOVED,
    ReleaseStore,
    StoredRelease,
    decode,
    deployer,
    encode,
)


class BytesDriver:
    """Keeps the stored form of each release, as a target's backend does."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def describe(self) -> str:
        return "the test's dict"

    def object_name(self, release_id: str) -> str:
        return f"object {release_id}"

    def load(self) -> list[StoredRelease]:
        return [decode(data, self.object_name(i), "Remove it.") for i, data in self.objects.items()]

    def write(self, stored: StoredRelease) -> None:
        self.objects[stored.release.id] = encode(stored)

    def delete(self, release_id: str) -> None:
        self.objects.pop(release_id, None)


def _store(driver: BytesDriver | None = None, keep: int = 10) -> ReleaseStore:
    return ReleaseStore(driver or BytesDriver(), "staging", keep)


def _record(store: ReleaseStore, status: str) -> str:
    release = store.new("kubernetes", "abc")
    release.status = status
    store.save(release)
    return release.id


def test_releases_created_in_one_second_keep_their_order() -> None:
    store = _store()
    made = [store.new("kubernetes", "abc") for _ in range(20)]
    assert [r.id for r in store.all()] == [r.id for r in made]
    assert len({r.id for r in made}) == 20
    # A fresh reader (another runner) sees the same order.
    fresh = _store(store.driver)  # type: ignore[arg-type]
    assert [r.id for r in fresh.all()] == [r.id for r in made]


def test_the_newest_good_release_serves_until_the_environment_is_taken_down() -> None:
    store = _store()
    first = _record(store, DEPLOYED)
    good = _record(store, DEPLOYED)
    bad = _record(store, FAILED)
    assert store.all()[-1].id == bad
    current = store.current()
    assert current is not None and current.id == good
    taken_down = store.get(good)
    taken_down.status = REMOVED
    store.save(taken_down)
    assert store.current() is None, "after `down` nothing serves, not the release before"
    last = store.last_good()
    assert last is not None and last.id == good and first != good


def test_a_clock_behind_another_runners_still_sorts_new_releases_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _store()
    first = store.new("compose", "abc")
    # Another runner, an hour ahead, recorded a release.
    ahead = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time() + 3600)) + "000Z-ffffff"
    other = releases.Release(ahead, "staging", "compose", "def", "2026-01-01T00:00:00Z")
    store.add(StoredRelease(other))
    monkeypatch.setattr(time, "time_ns", lambda: 0)
    latest = store.new("compose", "ghi")
    assert [r.id for r in store.all()] == [first.id, ahead, latest.id]


def test_the_history_limit_keeps_what_serves_the_last_good_one_and_a_waiting_preview() -> None:
    store = _store(keep=3)
    serving = _record(store, DEPLOYED)
    failures = [_record(store, FAILED) for _ in range(4)]
    preview = _record(store, PREVIEW)
    newest = store.new("kubernetes", "abc")
    deleted = store.trim(newest)
    assert deleted == failures, "the oldest that nothing protects go first"
    assert [r.id for r in store.all()] == [serving, preview, newest.id]
    assert set(store.driver.objects) == {serving, preview, newest.id}  # type: ignore[attr-defined]


def test_the_stored_form_round_trips_files_and_record() -> None:
    store = _store()
    release = store.new("kubernetes", "abc", ["components.web.replicas=3"])
    path = store.attach(release, "manifests.yaml", "kind: List\n")
    assert path.read_text() == "kind: List\n"
    store.save(release)
    fresh = _store(store.driver)  # type: ignore[arg-type]
    (again,) = fresh.all()
    assert again.sets == ["components.web.replicas=3"]
    assert again.deployed_by["user"] and again.deployed_by["host"]
    assert fresh.text(again, "manifests.yaml") == "kind: List\n"
    copy = fresh.path(again, "manifests.yaml")
    assert copy is not None and copy.read_text() == "kind: List\n"
    assert fresh.path(again, "compose.yaml") is None


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"not gzip at all", "is corrupt"),
        (gzip.compress(b"{not json"), "is corrupt"),
        (gzip.compress(json.dumps({"format": 1, "release": {}}).encode()), "not an autodevhub"),
        (
            gzip.compress(json.dumps({"format": 2, "release": {}, "files": {}}).encode()),
            "written by a newer autodevhub (record format 2; this version reads format 1)",
        ),
    ],
    ids=["not-gzip", "not-json", "no-record", "newer-format"],
)
def test_a_record_that_cannot_be_read_is_an_error_naming_it(data: bytes, words: str) -> None:
    backend = BytesDriver()
    store = _store(backend)
    store.new("kubernetes", "abc")
    backend.objects["20260101T000000000Z-000000"] = data
    with pytest.raises(StoreError) as caught:
        _store(backend).all()
    message = str(caught.value)
    assert "object 20260101T000000000Z-000000" in message and words in message


def test_records_an_earlier_version_kept_locally_are_imported_once(tmp_path: Path) -> None:
    folder = tmp_path / ".autodevhub" / "releases" / "staging"
    for stamp, status in (
        ("20261101T000000000Z-aaaaaa", "deployed"),
        ("20261102T000000000Z-bbbbbb", "failed"),
    ):
        (folder / stamp).mkdir(parents=True)
        record = {
            "id": stamp,
            "environment": "staging",
            "target": "kubernetes",
            "commit": "c1",
            "created_at": "2026-11-01T00:00:00Z",
            "status": status,
            "unknown": 1,
        }
        (folder / stamp / "release.json").write_text(json.dumps(record))
        (folder / stamp / "manifests.yaml").write_text(f"# {stamp}\n")
    # Torn, partial, foreign: skipped, never an "Unexpected error".
    for name, text in (("torn", "{"), ("partial", '{"id": "x"}'), ("list", "[1]"), ("null", "")):
        (folder / name).mkdir()
        (folder / name / "release.json").write_text(text)
    (folder / "binary").mkdir()
    (folder / "binary" / "release.json").write_bytes(b"\xff\xfe")
    store = _store()
    imported = store.import_local(folder)
    assert [r.id for r in imported] == ["20261101T000000000Z-aaaaaa", "20261102T000000000Z-bbbbbb"]
    current = store.current()
    assert current is not None and store.text(current, "manifests.yaml") == f"# {current.id}\n"
    assert not folder.exists() and folder.with_name("staging.imported").is_dir()
    assert store.import_local(folder.with_name("staging.imported")) == [], (
        "only into an empty store"
    )


def test_who_deployed_names_the_ci_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/shop")
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    assert deployer()["ci"] == "https://github.com/acme/shop/actions/runs/42"
