"""Chaos drill: the database stops while the service runs (503, then recovery without restart).

The drill runs its own throwaway PostgreSQL cluster (initdb + pg_ctl on a free port), so stopping
it disturbs no other test, and the real service as a subprocess (`python -m service`) with the
offline generator. SQLite is not drilled: it is a file opened by the service itself, there is no
server that can stop while the process runs.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import exc as sa_exc

from service.db import is_unavailable
from tests.service.conftest import ServedService, free_port, serve_service

POLL_SECONDS = 0.2  # WORKER_POLL_SECONDS of the service under test
OUTAGE_SECONDS = 3.0  # how long the database stays down after the checks made while it is


def _postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory holding initdb and pg_ctl."""
    found = [
        Path(p).parent
        for p in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
        if Path(p).with_name("initdb").exists()
    ]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


@dataclass
class Cluster:
    """A PostgreSQL cluster of this test's own, run as the `postgres` OS user when root."""

    bin: Path
    root: Path
    port: int
    as_user: list[str]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> str:
        return str(self.root / "data")

    def _run(self, tool: str, *args: str) -> None:
        command = [*self.as_user, str(self.bin / tool), *args]
        done = subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, f"{tool} exited {done.returncode}: {done.stdout}{done.stderr}"

    def init(self) -> None:
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        # fsync=off only matters for a machine crash; a fast stop still checkpoints everything.
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "pg.log")
        self._run("pg_ctl", "-D", self.data, "-l", log, "-o", options, "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.root / "data" / "postmaster.pid").exists()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A started throwaway cluster; stopped and removed afterwards, whatever happened."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin")
    as_user: list[str] = []
    owner: int | None = None
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            owner = pwd.getpwnam("postgres").pw_uid
        except KeyError:
            pytest.skip("running as root and there is no `postgres` OS user to run initdb as")
        if shutil.which("runuser") is None:
            pytest.skip("running as root and `runuser` is missing to run initdb as `postgres`")
        as_user = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="chaos-pg-"))
    if owner is not None:
        os.chown(root, owner, -1)
    pg = Cluster(bin=bin_dir, root=root, port=free_port(), as_user=as_user)
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        if pg.running():
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                pg.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def _serve(database_url: str, tmp: Path, log: Path) -> ServedService:
    """`python -m service` on `database_url` with the offline generator, its log in `log`."""
    settings = {
        "DATABASE_URL": database_url,
        "MIGRATE_ON_START": "true",
        "WORKER_POLL_SECONDS": str(POLL_SECONDS),
        "WORKER_NAME": "chaos-db",
        "WORKER_SLOT_DIR": str(tmp / "slots"),
        "LOG_LEVEL": "warning",
        "RATE_LIMIT_PER_MINUTE": "0",
        "READ_RATE_LIMIT_PER_MINUTE": "0",
    }
    return serve_service(settings, log)


def _wait_done(base: str, story_set_id: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = httpx.get(f"{base}/api/stories/{story_set_id}").json()
        if body["status"] in {"done", "failed"}:
            return body
        assert time.monotonic() < deadline, f"story set still {body['status']} after {timeout}s"
        time.sleep(0.1)


def _log_entries(log: Path, offset: int = 0) -> list[dict[str, Any]]:
    """The JSON log lines written after byte `offset` (non-JSON lines as {"msg": line})."""
    with log.open("rb") as handle:
        handle.seek(offset)
        lines = handle.read().decode(errors="replace").splitlines()
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            entries.append({"msg": line})
    return entries


def _assert_unavailable(response: httpx.Response) -> None:
    """A 503 in the service's error shape that tells the client to retry, with no traceback."""
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text
    body = response.json()
    assert set(body) == {"detail"}, body
    detail = body["detail"].lower()
    assert "database" in detail and "unavailable" in detail and "retry" in detail, detail
    assert int(response.headers["retry-after"]) >= 1


@pytest.mark.postgres
def test_database_outage_answers_503_and_recovers_without_restart(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Stop the service's PostgreSQL mid-run: liveness stays 200, readiness and the API answer
    503 (retry), the process lives on without a log storm; start it again and, with the same
    process, readiness returns, the earlier set is still there and new work is generated."""
    log = tmp_path / "service.log"
    service = _serve(cluster.url, tmp_path, log)
    proc, base = service.proc, service.base_url
    try:
        before = httpx.post(f"{base}/api/stories", json={"feature": "Survive a database outage"})
        assert before.status_code == 202, before.text
        kept = before.json()["id"]
        assert _wait_done(base, kept)["status"] == "done"
        assert kept in {item["id"] for item in httpx.get(f"{base}/api/stories").json()["items"]}
        listed_at = time.monotonic()

        offset = log.stat().st_size
        cluster.stop()
        stopped_at = time.monotonic()
        # The list page cache (LIST_CACHE_SECONDS, 1 s by default) may answer until it expires.
        time.sleep(max(0.0, 1.2 - (time.monotonic() - listed_at)))

        health = httpx.get(f"{base}/healthz")
        assert health.status_code == 200, health.text
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["database"] == "unreachable"
        assert "database unreachable" in ready.json()["reason"]
        _assert_unavailable(httpx.get(f"{base}/api/stories"))
        _assert_unavailable(httpx.get(f"{base}/api/stories/{kept}"))
        _assert_unavailable(httpx.post(f"{base}/api/stories", json={"feature": "Lost in outage"}))

        time.sleep(OUTAGE_SECONDS)  # the worker keeps polling a dead database meanwhile
        assert proc.poll() is None, "the service died while the database was down"
        assert httpx.get(f"{base}/healthz").status_code == 200
        _assert_unavailable(httpx.get(f"{base}/api/stories"))
        outage = time.monotonic() - stopped_at
        during = _log_entries(log, offset)

        cluster.start()
        restarted_at = time.monotonic()
        while httpx.get(f"{base}/readyz").status_code != 200:
            assert time.monotonic() - restarted_at < 10, "not ready 10 s after the database is back"
            time.sleep(0.2)
        page = httpx.get(f"{base}/api/stories", params={"limit": 100})
        assert page.status_code == 200, page.text
        items = {item["id"]: item for item in page.json()["items"]}
        assert items[kept]["status"] == "done" and items[kept]["story_count"] > 0
        after = httpx.post(f"{base}/api/stories", json={"feature": "Generated after the outage"})
        assert after.status_code == 202, after.text
        done = _wait_done(base, after.json()["id"])
        assert done["status"] == "done" and done["generator"] == "offline"

        # A restart no request saw: the pool still holds connections to the old server. A read
        # that meets one is a 503 to retry (never a 500), and the pool drops them all at once.
        cluster.stop()
        cluster.start()
        answers = []
        for _ in range(3):
            read = httpx.get(f"{base}/api/stories", params={"limit": 99})
            answers.append(read.status_code)
            if read.status_code == 200:
                break
            _assert_unavailable(read)
        assert answers[-1] == 200, answers
        assert kept in {item["id"] for item in read.json()["items"]}
        assert proc.poll() is None
    finally:
        service.stop()

    # No request reached the catch-all for unhandled errors (that is the 500 path).
    unhandled = [e for e in _log_entries(log) if e.get("msg") == "unhandled error"]
    assert not unhandled, unhandled[0]
    # Failures are logged, but at a bounded rate: the worker waits its poll interval between
    # attempts (a hot loop would write thousands of lines), and each request logs once.
    attempts = outage / POLL_SECONDS
    assert len(during) < 4 * attempts + 20, f"{len(during)} log lines in {outage:.1f} s of outage"
    worker = [e for e in during if e.get("logger") == "service.worker"]
    assert len(worker) <= 2 * attempts + 5, f"{len(worker)} worker log lines in {outage:.1f} s"
    # The worker says the outage once, without a traceback, and says when it is over.
    entries = [e for e in _log_entries(log) if e.get("logger") == "service.worker"]
    paused = [e for e in entries if e.get("msg", "").startswith("database unavailable")]
    resumed = [e for e in entries if e.get("msg", "").startswith("database back")]
    # Two outages (the second one no request saw): each said at most once, the first one's end
    # said (the second may end after the service stopped).
    assert 1 <= len(resumed) <= len(paused) <= 2, (paused, resumed)
    assert not [e for e in worker if e.get("level") == "error"], worker[:3]


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (sa_exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("refused")), True),
        (sa_exc.InterfaceError("SELECT 1", {}, psycopg.InterfaceError("closed")), True),
        (sa_exc.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True), True),
        (sa_exc.TimeoutError("QueuePool limit reached"), True),
        (sa_exc.OperationalError("x", {}, sqlite3.OperationalError("database is locked")), True),
        (sa_exc.OperationalError("x", {}, sqlite3.OperationalError("no such table: s")), False),
        (sa_exc.IntegrityError("INSERT", {}, psycopg.IntegrityError("duplicate key")), False),
        (ValueError("not a database error"), False),
    ],
)
def test_only_errors_a_retry_can_fix_count_as_unavailable(
    error: Exception, unavailable: bool
) -> None:
    """Lost connections, shutdowns and a full pool are a 503; SQL and data errors stay bugs."""
    assert is_unavailable(error) is unavailable
