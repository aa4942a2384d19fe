"""Restore drill: create stories, back up, destroy the database, restore: the same stories return.

Runs on SQLite and on the real PostgreSQL, through `autodevhub db backup` / `db restore`.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from autodevhub_cli.core import backup as backups
from service.main import create_app
from tests.helpers import REPO, run_cli
from tests.service.conftest import SettingsFactory, wait_for


def _stories(settings: Any) -> dict[str, Any]:
    with TestClient(create_app(settings)) as client:
        items = client.get("/api/stories?limit=100").json()["items"]
        return {i["id"]: client.get(f"/api/stories/{i['id']}").json() for i in items}


def _destroy(url: str) -> None:
    if url.startswith("sqlite"):
        backups.sqlite_path(url).unlink()
        return
    import psycopg

    with psycopg.connect(backups.libpq_url(url), autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


def _cli(*args: str) -> tuple[int, str, str]:
    return run_cli("db", *args, "--env", "staging", "-C", str(REPO))


def test_restore_drill(migrated: SettingsFactory, database_url: str, tmp_path: Path) -> None:
    settings = migrated()
    with TestClient(create_app(settings)) as client:
        ids = [
            client.post(
                "/api/stories", json={"feature": f"Feature number {n} for the drill"}
            ).json()["id"]
            for n in range(3)
        ]
        for story_id in ids:
            assert wait_for(client, story_id)["status"] == "done"
    before = _stories(settings)
    assert set(before) == set(ids)
    folder = tmp_path / "backups"
    code, out, err = _cli(
        "backup", "--database-url", database_url, "--to", str(folder), "-o", "json"
    )
    assert code == 0, err
    made = json.loads(out)
    path = Path(made["path"])
    assert path.exists() and Path(f"{path}.sha256").read_text().split()[0] == made["sha256"]

    # A database that holds data is not overwritten without --force.
    code, _, err = _cli("restore", "--from", str(path), "--database-url", database_url)
    assert code == 1
    assert "is not empty" in err and "--force" in err

    _destroy(database_url)
    code, _, err = _cli("restore", "--from", str(path), "--database-url", database_url)
    assert code == 0, err
    after = _stories(settings)
    assert after == before


def _small_sqlite(tmp_path: Path) -> str:
    path = tmp_path / "small.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
    return f"sqlite:///{path}"


def test_corrupt_backup_is_refused(tmp_path: Path) -> None:
    sqlite_url = _small_sqlite(tmp_path)
    made = backups.backup(sqlite_url, tmp_path / "b")
    path = Path(made.path)
    with path.open("r+b") as handle:
        handle.seek(100)
        handle.write(b"\0corrupt\0")
    code, _, err = _cli("restore", "--from", str(path), "--database-url", sqlite_url, "--force")
    assert code == 1
    assert "is corrupt" in err


def test_retention_keeps_thirty_days(tmp_path: Path) -> None:
    sqlite_url = _small_sqlite(tmp_path)
    folder = tmp_path / "b"
    now = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
    for days_ago in (45, 31, 29, 1):
        backups.backup(
            sqlite_url, folder, now=now - dt.timedelta(days=days_ago), retention_days=365
        )
    made = backups.backup(sqlite_url, folder, now=now, retention_days=30)
    assert sorted(made.deleted) == [
        "autodevhub-20261013T020000Z.sqlite3",
        "autodevhub-20261027T020000Z.sqlite3",
    ]
    left = sorted(p.name for p in folder.iterdir() if p.suffix == ".sqlite3")
    assert left == [
        "autodevhub-20261029T020000Z.sqlite3",
        "autodevhub-20261126T020000Z.sqlite3",
        "autodevhub-20261127T020000Z.sqlite3",
    ]
    assert all((folder / f"{name}.sha256").exists() for name in left)


def test_no_database_url_says_where_to_get_one() -> None:
    code, _, err = _cli("backup")
    assert code == 2
    assert "No database URL for environment 'staging'" in err
    assert "autodevhub-secrets" in err


def test_passwords_are_redacted() -> None:
    assert backups.redact("postgresql://app:s3cret@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert backups.redact("sqlite:////data/x.db") == "sqlite:////data/x.db"
