"""`autodevhub db backup` hands pg_dump the database password in a 0600 pgpass file, never on its
command line (which every process on the machine can read) nor in its environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from autodevhub_cli.core import backup as backups
from tests.helpers import postgres_tool, recording_pg_dump

pytestmark = pytest.mark.postgres

PASSWORD = "s3cr:t\\pw@x"
ENCODED = "s3cr%3At%5Cpw%40x"


def test_the_password_reaches_pg_dump_only_in_a_private_pgpass_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.service.conftest import postgres_reachable

    reason = postgres_reachable()
    if reason:
        pytest.skip(reason)
    real = postgres_tool("pg_dump")
    if real is None:
        pytest.skip("pg_dump not found in /usr/lib/postgresql/*/bin")
    bin_dir, record = tmp_path / "bin", tmp_path / "record"
    bin_dir.mkdir()
    recording_pg_dump(bin_dir, record, real)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("PGPASSWORD", "not-this-one")
    url = f"postgresql+psycopg://postgres:{ENCODED}@127.0.0.1:5432/test"
    made = backups.backup(url, tmp_path / "out")
    assert Path(made.path).stat().st_size > 0
    assert made.database == "postgresql+psycopg://postgres:***@127.0.0.1:5432/test"
    args = Path(f"{record}.args").read_text()
    assert "--dbname=postgresql://postgres@127.0.0.1:5432/test" in args
    environment = Path(f"{record}.env").read_text()
    for text in (args, environment):
        assert ENCODED not in text and PASSWORD not in text and "not-this-one" not in text
    assert Path(f"{record}.mode").read_text().strip() == "600"
    assert Path(f"{record}.pgpass").read_text() == "*:*:*:*:s3cr\\:t\\\\pw@x\n"
    leftovers = [p for p in Path(made.path).parent.iterdir() if "pgpass" in p.name]
    assert not leftovers


def test_a_url_without_a_password_writes_no_pgpass_file() -> None:
    assert backups.libpq_dsn("postgresql://app@db:5432/x") == ("postgresql://app@db:5432/x", None)
    assert backups.libpq_dsn("postgres+psycopg://app:p%2Fw@db/x?sslmode=require") == (
        "postgresql://app@db/x?sslmode=require",
        "p/w",
    )
