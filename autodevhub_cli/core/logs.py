"""An environment's log: every replica of its components, read from the target (the Docker
engine, the cluster), merged in time order, secret values masked; followed as replicas come
and go (a rollout's new pods, a recreated container) until the caller stops reading.

Target-neutral: a target lists its replicas (`Target.replicas`) and opens one replica's log
(`Target.read_log`, lines with the engine's own timestamps); this module does the rest."""

from __future__ import annotations

import datetime as dt
import heapq
import logging
import math
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from autodevhub_cli.core.errors import AutodevhubError, ConfigError
from autodevhub_cli.core.redact import Redactor

if TYPE_CHECKING:
    from autodevhub_cli.core.environment import Environment
    from autodevhub_cli.core.targets import Replica, Target

log = logging.getLogger("autodevhub.logs")

# How often a follow asks the target which replicas exist (new pods of a rollout, a container
# Compose recreated, a restarted container).
SCAN_SECONDS = 1.0
_DURATION = re.compile(r"^(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$")
_EPOCH = dt.datetime.fromtimestamp(0, dt.UTC)


@dataclass(frozen=True)
class LogLine:
    """One line a replica printed, with the time the engine received it."""

    time: dt.datetime | None
    component: str
    replica: str  # the container's or pod's name, as the engine knows it
    short: str  # the replica as shown after its component: "1", a pod's name without it
    text: str
    role: str = ""  # a blue-green pod's: active, preview or old (Replica.role)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (one object per line with `--output json`)."""
        return {
            "time": self.time.isoformat().replace("+00:00", "Z") if self.time else None,
            "component": self.component,
            "replica": self.replica,
            "role": self.role or None,
            "line": self.text,
        }


@dataclass(kw_only=True, frozen=True)
class LogQuery:
    """What to read: which components, how far back, and whether to follow."""

    components: tuple[str, ...] = ()  # none: every component of the environment
    since: float | None = None  # seconds back from now
    tail: int | None = None  # at most this many of each replica's last lines
    previous: bool = False  # the container that ran before the current one (Kubernetes)
    follow: bool = False


def parse_since(text: str) -> float:
    """`--since` as seconds: 30s, 5m, 2h, 1d or a combination such as 1h30m."""
    found = _DURATION.match(text.strip())
    if not text.strip() or found is None or not any(found.groups()):
        raise ConfigError(
            f"--since {text!r} is not a duration.",
            hint="Give a duration such as 30s, 10m, 2h, 1d or 1h30m.",
        )
    days, hours, minutes, secs = (int(part or 0) for part in found.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + secs)


def parse_timestamped(chunks: Iterable[bytes]) -> Iterator[tuple[dt.datetime | None, str]]:
    """Lines of a log read with timestamps (`2026-12-07T06:10:11.123456789Z text`, as the Docker
    engine and the kubelet both give them) from chunks that may split or join lines."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield split_timestamp(line.decode(errors="replace").rstrip("\r"))
    if pending:
        yield split_timestamp(pending.decode(errors="replace").rstrip("\r"))


def split_timestamp(line: str) -> tuple[dt.datetime | None, str]:
    """(time, text) of one timestamped line; (None, line) when it does not start with one."""
    stamp, _sep, text = line.partition(" ")
    moment = parse_time(stamp)
    return (moment, text) if moment is not None else (None, line)


def parse_time(stamp: str) -> dt.datetime | None:
    """An RFC 3339 time with up to nanoseconds (Python keeps microseconds)."""
    found = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", stamp)
    if found is None:
        return None
    base, fraction, zone = found.groups()
    micros = (fraction or "0")[:6].ljust(6, "0")
    try:
        return dt.datetime.fromisoformat(f"{base}.{micros}{'+00:00' if zone == 'Z' else zone}")
    except ValueError:
        return None


def components_of(environment: Environment, asked: Sequence[str]) -> tuple[str, ...]:
    """The components asked for (all of them when none is), each checked to exist."""
    known = list(environment.components)
    unknown = [name for name in asked if name not in environment.components]
    if unknown:
        raise ConfigError(
            f"Environment {environment.name!r} has no component "
            + ", ".join(repr(n) for n in unknown)
            + f" (its components: {', '.join(known)}).",
            hint="Name components of the environment, or none for all of them.",
        )
    return tuple(dict.fromkeys(asked)) if asked else tuple(known)


def read_logs(
    target: Target,
    environment: Environment,
    query: LogQuery,
    note: Callable[[str], None] = lambda _message: None,
) -> Iterator[LogLine]:
    """The lines of every replica of the components asked for: what each has printed (its last
    `tail` lines, those of the last `since` seconds) merged in time order, then, with `follow`,
    new lines as they come, from replicas that start later too. Known secret values, URL
    userinfo and secret query parameters are masked. A blue-green pod's lines carry its role,
    which a follow keeps current (a promotion turns the preview active). `note` hears what is
    not a log line (a replica without a previous container, one that comes, goes or changes
    role while following)."""
    components = components_of(environment, query.components)
    if query.previous and not target.keeps_previous_logs:
        raise ConfigError(
            f"--previous reads the container Kubernetes replaced; on {target.name} a container "
            "keeps one log across its restarts, and a replaced one is removed with its log.",
            hint="Run without --previous: the log shows what the container printed before it "
            "restarted (--since or --tail to go back).",
        )
    if query.previous and query.follow:
        raise ConfigError(
            "--previous and --follow cannot be combined: a container that ended prints nothing "
            "more.",
            hint="Use --previous to read the crashed container, --follow for the running one.",
        )
    hide = Redactor(target.secret_values(components))
    replicas = target.replicas(components)
    if not replicas:
        note(f"No replica of {', '.join(components)} exists in {environment.name} now.")
    since = (
        dt.datetime.now(dt.UTC) - dt.timedelta(seconds=query.since)
        if query.since is not None
        else None
    )
    backlog, last = _backlog(target, replicas, query, since, hide, note)
    yield from backlog
    if query.follow:
        roles = {r.key: r.role for r in replicas}
        yield from _follow(target, components, roles, last, since, hide, note)


def _lines(
    replica: Replica, pairs: Iterable[tuple[dt.datetime | None, str]], hide: Redactor
) -> Iterator[LogLine]:
    for moment, text in pairs:
        yield LogLine(
            moment, replica.component, replica.name, replica.short, hide.text(text), replica.role
        )


def _backlog(
    target: Target,
    replicas: list[Replica],
    query: LogQuery,
    since: dt.datetime | None,
    hide: Redactor,
    note: Callable[[str], None],
) -> tuple[Iterator[LogLine], dict[str, dt.datetime | None]]:
    """What each replica printed so far, read side by side, merged by time; and the time of
    each replica's last line (where a follow goes on from)."""
    chosen = [r for r in replicas if r.restarted] if query.previous else replicas
    for replica in replicas:
        if query.previous and not replica.restarted:
            note(f"{replica.component}/{replica.short} has not restarted: no previous container.")

    def read(replica: Replica) -> list[LogLine]:
        try:
            stream = target.read_log(
                replica, since=since, tail=query.tail, previous=query.previous, follow=False
            )
            return list(_lines(replica, stream, hide))
        except AutodevhubError as exc:
            note(f"{replica.component}/{replica.short}: {exc.message}")
            return []

    with ThreadPoolExecutor(max_workers=8) as pool:
        read_lines = list(pool.map(read, chosen))
    last: dict[str, dt.datetime | None] = {}
    for replica, lines in zip(chosen, read_lines, strict=True):
        times = [line.time for line in lines if line.time is not None]
        last[replica.key] = max(times) if times else since
    merged = heapq.merge(*(_in_order(lines) for lines in read_lines), key=_sort_key)
    return (line for _moment, _index, line in merged), last


def _in_order(lines: list[LogLine]) -> Iterator[tuple[dt.datetime, int, LogLine]]:
    """A replica's lines keyed for the merge: a line without a time takes its predecessor's."""
    moment = _EPOCH
    for index, line in enumerate(lines):
        moment = line.time or moment
        yield moment, index, line


def _sort_key(item: tuple[dt.datetime, int, LogLine]) -> tuple[dt.datetime, int]:
    return item[0], item[1]


# --- follow ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ended:
    key: str
    why: str = ""


def _follow(
    target: Target,
    components: tuple[str, ...],
    roles: dict[str, str],
    last: dict[str, dt.datetime | None],
    since: dt.datetime | None,
    hide: Redactor,
    note: Callable[[str], None],
) -> Iterator[LogLine]:
    """New lines as they come, from every replica that runs; the replicas are listed again
    every SCAN_SECONDS, so a rollout's new pods and a recreated container are picked up (from
    their first line) and a restarted one goes on where it stopped."""
    found: queue.Queue[tuple[str, LogLine] | _Ended] = queue.Queue()
    active: dict[str, Replica] = {}
    names: dict[str, str] = {}
    known = set(roles)  # the replicas the backlog read (with their roles then)
    stop = threading.Event()

    def pump(replica: Replica, after: dt.datetime | None) -> None:
        why = ""
        try:
            stream = target.read_log(replica, since=after, tail=None, previous=False, follow=True)
            try:
                for line in _lines(replica, stream, hide):
                    if stop.is_set():
                        break
                    if after is not None and line.time is not None and line.time <= after:
                        continue  # already shown: the engine's `since` has whole seconds
                    found.put((replica.key, line))
            finally:
                stream.close()
        except AutodevhubError as exc:  # not started yet, or gone: the next scan decides
            why = exc.message
            log.info("logs: %s/%s: %s", replica.component, replica.short, why)
        finally:
            found.put(_Ended(replica.key, why))

    try:
        next_scan = 0.0
        while True:
            if time.monotonic() >= next_scan:
                now = {r.key: r for r in target.replicas(components)}
                for key, replica in now.items():
                    names[key] = f"{replica.component}/{replica.short}"
                    if key not in known:
                        known.add(key)
                        note(f"+ {names[key]} started" + _as(replica.role))
                    elif replica.role and replica.role != roles.get(key, replica.role):
                        note(f"~ {names[key]} is now {replica.role}")
                    roles[key] = replica.role
                    if key not in active and replica.running:
                        active[key] = replica
                        after = last.get(key, since)
                        threading.Thread(target=pump, args=(replica, after), daemon=True).start()
                for key in [k for k in known if k not in now]:
                    known.discard(key)
                    last.pop(key, None)
                    roles.pop(key, None)
                    note(f"- {names.get(key, key)} is gone")
                next_scan = time.monotonic() + SCAN_SECONDS
            try:
                item = found.get(timeout=max(0.05, next_scan - time.monotonic()))
            except queue.Empty:
                continue
            if isinstance(item, _Ended):
                active.pop(item.key, None)
                continue
            key, line = item
            if line.time is not None:
                last[key] = line.time
            role = roles.get(key, line.role)
            yield line if role == line.role else replace(line, role=role)
    finally:
        stop.set()


def since_seconds(after: dt.datetime) -> int:
    """Whole seconds back to `after` (at least 1), for an API that takes only that."""
    return max(1, math.ceil((dt.datetime.now(dt.UTC) - after).total_seconds()) + 1)


def _as(role: str) -> str:
    return f" ({role})" if role else ""
