"""core/logs.py against a target double: the merge in time order, the masking of secret values,
the refusals, and a follow that picks up a replica that starts later and notes one that goes.
The targets' own reading (the Docker engine, the real node) is tested in tests/deploy."""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections.abc import Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from autodevhub_cli.core.errors import ApplyError, ConfigError
from autodevhub_cli.core.logs import (
    LogQuery,
    parse_since,
    parse_timestamped,
    read_logs,
)
from autodevhub_cli.core.targets import Replica

T0 = dt.datetime(2026, 12, 7, 6, 0, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


class Stream:
    """A replica's log: fixed lines, then (following) whatever is put on its queue until None."""

    def __init__(self, lines: list[tuple[dt.datetime | None, str]], live: queue.Queue[Any] | None):
        self.lines, self.live, self.closed = lines, live, False

    def __iter__(self) -> Iterator[tuple[dt.datetime | None, str]]:
        yield from self.lines
        while self.live is not None and not self.closed:
            try:
                item = self.live.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is None:
                return
            yield item

    def close(self) -> None:
        self.closed = True


class Double:
    """A target whose replicas and logs the test sets; it records what was asked."""

    name = "double"

    def __init__(self, keeps_previous_logs: bool = True) -> None:
        self.keeps_previous_logs = keeps_previous_logs
        self.now: list[Replica] = []
        self.logs: dict[str, list[tuple[dt.datetime | None, str]]] = {}
        self.previous_logs: dict[str, list[tuple[dt.datetime | None, str]]] = {}
        self.live: dict[str, queue.Queue[Any]] = {}
        self.asked: list[dict[str, Any]] = []
        self.secrets: list[str] = []
        self.unreadable: set[str] = set()
        self.lock = threading.Lock()

    def replicas(self, components: Sequence[str]) -> list[Replica]:
        with self.lock:
            return [r for r in self.now if r.component in components]

    def read_log(
        self,
        replica: Replica,
        *,
        since: dt.datetime | None,
        tail: int | None,
        previous: bool,
        follow: bool,
    ) -> Stream:
        self.asked.append(
            {
                "key": replica.key,
                "since": since,
                "tail": tail,
                "previous": previous,
                "follow": follow,
            }
        )
        if replica.key in self.unreadable:
            raise ApplyError(f"container {replica.name} is waiting to start")
        lines = (self.previous_logs if previous else self.logs).get(replica.key, [])
        lines = [(t, x) for t, x in lines if since is None or t is None or t >= since]
        if tail is not None:
            lines = lines[-tail:] if tail else []
        return Stream(lines, self.live.setdefault(replica.key, queue.Queue()) if follow else None)

    def secret_values(self, components: Sequence[str]) -> list[str]:
        return list(self.secrets)


def replica(component: str, short: str, running: bool = True, restarted: bool = False) -> Replica:
    return Replica(
        component, f"{component}-{short}", short, f"{component}-{short}-id", running, restarted
    )


ENV: Any = SimpleNamespace(name="dev", components={"api": None, "worker": None, "web": None})


def read(target: Double, **query: Any) -> tuple[list[str], list[str]]:
    notes: list[str] = []
    lines = read_logs(target, ENV, LogQuery(**query), notes.append)  # type: ignore[arg-type]
    return [f"{line.component}/{line.short} {line.text}" for line in lines], notes


def test_every_replica_merged_in_time_order_with_component_and_replica() -> None:
    target = Double()
    target.now = [replica("api", "1"), replica("api", "2"), replica("worker", "1")]
    target.logs = {
        "api-1-id": [(at(1), "a1 first"), (at(4), "a1 second")],
        "api-2-id": [(at(2), "a2 first"), (None, "a2 continued"), (at(5), "a2 third")],
        "worker-1-id": [(at(3), "w1 first")],
    }
    lines, notes = read(target)
    assert lines == [
        "api/1 a1 first",
        "api/2 a2 first",
        "api/2 a2 continued",  # no time of its own: it stays after its predecessor
        "worker/1 w1 first",
        "api/1 a1 second",
        "api/2 a2 third",
    ]
    assert notes == []
    lines, _ = read(target, components=("worker",))
    assert lines == ["worker/1 w1 first"]


def test_tail_and_since_reach_the_target_for_each_replica() -> None:
    target = Double()
    target.now = [replica("api", "1"), replica("api", "2")]
    target.logs = {"api-1-id": [(at(1), "old"), (at(9), "new")], "api-2-id": [(at(2), "two")]}
    lines, _ = read(target, tail=1)
    assert lines == ["api/2 two", "api/1 new"]
    assert {a["tail"] for a in target.asked} == {1}
    target.asked.clear()
    read(target, since=30.0)
    (since,) = {a["since"] for a in target.asked}
    assert since is not None
    assert abs((dt.datetime.now(dt.UTC) - since).total_seconds() - 30) < 5


def test_secret_values_and_url_passwords_are_masked() -> None:
    target = Double()
    target.now = [replica("api", "1")]
    target.secrets = ["s3cr3t-token-value"]
    target.logs = {
        "api-1-id": [
            (at(1), "token is s3cr3t-token-value"),
            (at(2), "connecting to postgresql://app:hunter2hunter2@db:5432/app"),
        ]
    }
    lines, _ = read(target)
    joined = "\n".join(lines)
    assert "s3cr3t-token-value" not in joined and "hunter2hunter2" not in joined, joined
    assert "token is ***" in joined and "postgresql://app:***@db:5432/app" in joined


def test_an_unknown_component_is_named_with_the_environments_components() -> None:
    target = Double()
    with pytest.raises(ConfigError) as caught:
        read(target, components=("api", "nope"))
    assert "'nope'" in caught.value.message and "api, worker, web" in caught.value.message


def test_previous_reads_the_restarted_replicas_and_notes_the_others() -> None:
    target = Double()
    target.now = [replica("api", "1", restarted=True), replica("api", "2")]
    target.previous_logs = {"api-1-id": [(at(1), "boom: crashed")]}
    lines, notes = read(target, previous=True)
    assert lines == ["api/1 boom: crashed"]
    assert notes == ["api/2 has not restarted: no previous container."]
    with pytest.raises(ConfigError) as caught:
        read(target, previous=True, follow=True)
    assert "--previous and --follow" in caught.value.message


def test_previous_is_refused_where_the_target_keeps_no_replaced_container() -> None:
    with pytest.raises(ConfigError) as caught:
        read(Double(keeps_previous_logs=False), previous=True)
    assert "--previous" in caught.value.message and "double" in caught.value.message
    assert caught.value.hint and "--since" in caught.value.hint


def test_a_replica_whose_log_cannot_be_read_is_noted_and_the_others_shown() -> None:
    target = Double()
    target.now = [replica("api", "1"), replica("api", "2", running=False)]
    target.logs = {"api-1-id": [(at(1), "up")]}
    target.unreadable = {"api-2-id"}
    lines, notes = read(target)
    assert lines == ["api/1 up"]
    assert notes == ["api/2: container api-2 is waiting to start"]


def test_no_replica_at_all_is_said() -> None:
    lines, notes = read(Double())
    assert lines == [] and notes == ["No replica of api, worker, web exists in dev now."]


def test_follow_goes_on_where_the_backlog_ended_and_picks_up_a_replica_that_starts_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("autodevhub_cli.core.logs.SCAN_SECONDS", 0.05)
    target = Double()
    first = replica("api", "1")
    target.now = [first]
    target.logs = {"api-1-id": [(at(1), "before")]}
    notes: list[str] = []
    lines = read_logs(target, ENV, LogQuery(follow=True), notes.append)  # type: ignore[arg-type]
    seen: list[str] = []
    assert next(lines).text == "before"
    # The follow asks from the backlog's last line on; the engine answers in whole seconds,
    # so it repeats that line, which is not shown twice.
    live = target.live.setdefault("api-1-id", queue.Queue())
    live.put((at(2), "live one"))
    seen.append(next(lines).text)
    follows = [a for a in target.asked if a["follow"]]
    assert follows and follows[0]["since"] == at(1) and follows[0]["tail"] is None
    # A rollout: a new replica comes (its whole log is shown), the old one goes.
    second = replica("api", "2")
    target.logs["api-2-id"] = [(at(3), "new pod started")]
    with target.lock:
        target.now = [first, second]
    seen.append(next(lines).text)
    live.put(None)  # the old container stops
    with target.lock:
        target.now = [second]
    # The next line comes only after a few scans: the follow notices meanwhile that api/1 went.
    later = threading.Timer(
        0.5, lambda: target.live.setdefault("api-2-id", queue.Queue()).put((at(4), "serving"))
    )
    later.start()
    seen.append(next(lines).text)
    lines.close()  # what Ctrl-C does to the command's loop
    assert seen == ["live one", "new pod started", "serving"]
    assert "+ api/2 started" in notes and "- api/1 is gone" in notes, notes


def test_follow_shows_a_line_the_engine_repeats_from_the_backlog_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("autodevhub_cli.core.logs.SCAN_SECONDS", 0.05)
    target = Double()
    target.now = [replica("api", "1")]
    target.logs = {"api-1-id": [(at(1), "only once")]}
    lines = read_logs(target, ENV, LogQuery(follow=True), lambda _m: None)  # type: ignore[arg-type]
    assert next(lines).text == "only once"
    target.live.setdefault("api-1-id", queue.Queue()).put((at(7), "then this"))
    assert next(lines).text == "then this"
    lines.close()


def test_blue_green_roles_on_the_lines_and_a_promotion_noted_while_following(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A blue-green pod's lines carry its role; a follow keeps it current: after a promotion
    the preview's lines say active, the old version's say old, and the change is noted."""
    from dataclasses import replace

    from autodevhub_cli.commands.logs import format_line

    monkeypatch.setattr("autodevhub_cli.core.logs.SCAN_SECONDS", 0.05)
    target = Double()
    blue = replace(replica("api", "blue"), role="active")
    green = replace(replica("api", "green"), role="preview")
    target.now = [blue, green, replica("worker", "1")]
    target.logs = {
        "api-blue-id": [(at(1), "serving v1")],
        "api-green-id": [(at(2), "ready v2")],
        "worker-1-id": [(at(3), "working")],
    }
    notes: list[str] = []
    lines = read_logs(target, ENV, LogQuery(follow=True), notes.append)  # type: ignore[arg-type]
    backlog = [next(lines) for _ in range(3)]
    assert [(line.short, line.role) for line in backlog] == [
        ("blue", "active"),
        ("green", "preview"),
        ("1", ""),
    ]
    width = [0]
    assert [format_line(line, width, None) for line in backlog] == [
        "api/blue (active) | serving v1",
        "api/green (preview) | ready v2",
        "worker/1            | working",
    ]
    assert backlog[1].to_dict()["role"] == "preview" and backlog[2].to_dict()["role"] is None
    # Promoted: green serves, blue scales down; lines read by the same streams say so.
    with target.lock:
        target.now = [replace(blue, role="old"), replace(green, role="active")]
    target.live.setdefault("api-green-id", queue.Queue()).put((at(5), "serving v2"))
    promoted = next(lines)
    lines.close()
    assert (promoted.text, promoted.role) == ("serving v2", "active")
    assert "~ api/blue is now old" in notes and "~ api/green is now active" in notes, notes


def test_parse_since_and_its_refusals() -> None:
    assert parse_since("30s") == 30 and parse_since("10m") == 600
    assert parse_since("1h30m") == 5400 and parse_since("1d") == 86400
    for bad in ("", "10", "5x", "-1m", "m"):
        with pytest.raises(ConfigError) as caught:
            parse_since(bad)
        assert "--since" in caught.value.message and caught.value.hint


def test_timestamped_lines_split_across_chunks_with_nanoseconds() -> None:
    chunks = [
        b"2026-12-07T06:00:01.123456789Z hel",
        b"lo\n2026-12-07T06:00:02Z second\r\n2026-12-07T06:00:03.5Z",
        b" last without newline",
    ]
    assert list(parse_timestamped(chunks)) == [
        (dt.datetime(2026, 12, 7, 6, 0, 1, 123456, tzinfo=dt.UTC), "hello"),
        (at(2), "second"),
        (dt.datetime(2026, 12, 7, 6, 0, 3, 500000, tzinfo=dt.UTC), "last without newline"),
    ]
    assert list(parse_timestamped([b"no timestamp here\n"])) == [(None, "no timestamp here")]
