"""Release records order by creation, whatever the clock does."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from autodevhub_cli.core.project import Project
from autodevhub_cli.core.releases import DEPLOYED, FAILED, ReleaseStore


def test_releases_created_in_one_second_keep_their_order(tmp_path: Path) -> None:
    store = ReleaseStore(Project(tmp_path), "staging")
    made = [store.new("kubernetes", "abc") for _ in range(20)]
    assert [r.id for r in store.all()] == [r.id for r in made]
    assert len({r.id for r in made}) == 20


def test_the_newest_release_decides_current_even_in_the_same_second(tmp_path: Path) -> None:
    store = ReleaseStore(Project(tmp_path), "staging")
    good = store.new("kubernetes", "abc")
    good.status = DEPLOYED
    store.save(good)
    bad = store.new("kubernetes", "def")
    bad.status = FAILED
    store.save(bad)
    assert store.all()[-1].id == bad.id
    current = store.current()
    assert current is not None and current.id == good.id


def test_a_clock_that_steps_back_still_sorts_new_releases_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ReleaseStore(Project(tmp_path), "dev")
    first = store.new("compose", "abc")
    # An id written in an older format, an hour ahead of the clock.
    ahead = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + 3600)) + "-ffffff"
    (store.folder / ahead).mkdir()
    (store.folder / ahead / "release.json").write_text(
        (store.folder / first.id / "release.json").read_text().replace(first.id, ahead)
    )
    monkeypatch.setattr(time, "time_ns", lambda: 0)
    latest = store.new("compose", "def")
    assert [r.id for r in store.all()] == [first.id, ahead, latest.id]
