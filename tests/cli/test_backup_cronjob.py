"""The backup CronJob's script, as rendered, run for real: the database URL is a mounted file,
the password reaches pg_dump only through a 0600 pgpass file, never an argument or env var."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autodevhub_cli.core.backup import verify
from tests.helpers import REPO, documents, find, postgres_tool, recording_pg_dump, run_cli

pytestmark = pytest.mark.postgres

# A password with every character the URL and pgpass formats treat specially.
PASSWORD = "p@ss:w/rd\\%41 ?#&=x"
ENCODED = "p%40ss%3Aw%2Frd%5C%2541%20%3F%23%26%3Dx"


def _cronjob(env: str = "staging") -> dict[str, Any]:
    code, out, err = run_cli("render", "--env", env, "--project-dir", str(REPO))
    assert code == 0, err
    return find(documents(out), "CronJob", "backup")


def _pod(cronjob: dict[str, Any]) -> dict[str, Any]:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def test_the_secret_is_a_read_only_file_and_no_env_var() -> None:
    pod = _pod(_cronjob())
    (container,) = pod["containers"]
    assert not [e for e in container["env"] if "valueFrom" in e]
    assert {"name": "secrets", "mountPath": "/run/secrets", "readOnly": True} in container[
        "volumeMounts"
    ]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "secrets"]
    assert volume["secret"] == {
        "secretName": "autodevhub-secrets",
        "defaultMode": 0o440,
        "items": [{"key": "database-url", "path": "database_url"}],
    }
    assert "DATABASE_URL" not in "\n".join(container["args"])


def test_the_image_is_pinned_and_runs_as_a_high_uid() -> None:
    for env in ("staging", "prod"):
        pod = _pod(_cronjob(env))
        (container,) = pod["containers"]
        repository, _, digest = container["image"].partition("@")
        assert repository.startswith("postgres:16"), container["image"]
        assert digest.startswith("sha256:") and len(digest) == 71, container["image"]
        assert container["imagePullPolicy"] == "Always"
        assert pod["securityContext"]["runAsUser"] > 10000
        assert pod["securityContext"]["runAsGroup"] > 10000


@pytest.fixture
def database() -> Iterator[tuple[str, str]]:
    """A throwaway database with one table, and a role of its own whose password needs escaping."""
    import psycopg

    from tests.service.conftest import PG_ADMIN_URL, postgres_reachable

    reason = postgres_reachable()
    if reason:
        pytest.skip(reason)
    name = f"autodevhub_t_{uuid.uuid4().hex[:12]}"
    role = f"backup_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{PASSWORD.replace(chr(39), 2 * chr(39))}'"
        )
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{role}"')
    with psycopg.connect(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", autocommit=True) as conn:
        conn.execute(
            f'CREATE TABLE stories (id int, title text); ALTER TABLE stories OWNER TO "{role}"'
        )
        conn.execute("INSERT INTO stories VALUES (1, 'a story')")
    try:
        yield name, role
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def _real_pg_dump() -> Path:
    found = postgres_tool("pg_dump")
    if found is None:
        pytest.skip("pg_dump not found in /usr/lib/postgresql/*/bin")
    return found


@pytest.mark.parametrize("shell", ["busybox", "dash"])
def test_the_script_dumps_with_the_password_from_the_file_only(
    shell: str, database: tuple[str, str], tmp_path: Path
) -> None:
    """Under Alpine's busybox (the image's shell and awk) and Debian's dash."""
    name, role = database
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    script = _pod(_cronjob())["containers"][0]["args"][0]
    secrets, backups, tmp, bin_dir = (tmp_path / d for d in ("secrets", "backups", "tmp", "bin"))
    for folder in (secrets, backups, tmp, bin_dir):
        folder.mkdir()
    (secrets / "database_url").write_text(
        f"postgresql+psycopg://{role}:{ENCODED}@127.0.0.1:5432/{name}?sslmode=disable"
    )
    # pg_dump as the script calls it: its arguments, its environment and the pgpass file are
    # recorded before the real one runs.
    record = tmp_path / "pg_dump.record"
    recording_pg_dump(bin_dir, record, _real_pg_dump())
    if shell == "busybox":
        for applet in (
            "awk",
            "cat",
            "date",
            "find",
            "mv",
            "rm",
            "printf",
            "stat",
            "env",
            "sha256sum",
        ):
            (bin_dir / applet).symlink_to(shutil.which("busybox") or "busybox")
        command = ["busybox", "sh", "-c", script]
    else:
        command = ["dash", "-c", script]
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "RETENTION_DAYS": "30",
        "SECRETS_DIR": str(secrets),
        "BACKUP_DIR": str(backups),
        "PGPASSFILE": str(tmp / "pgpass"),
    }
    # Retention: a dump older than RETENTION_DAYS goes, a younger one stays.
    old, young = backups / "autodevhub-staging-old.dump", backups / "autodevhub-staging-young.dump"
    old_sum = old.with_name(old.name + ".sha256")
    for path, age_days in ((old, 31), (old_sum, 31), (young, 29)):
        path.write_bytes(b"x")
        moment = time.time() - age_days * 86400
        os.utime(path, (moment, moment))
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not old.exists() and not old_sum.exists() and young.exists()
    young.unlink()
    (dump,) = backups.glob("*.dump")
    assert dump.name.startswith("autodevhub-staging-")
    # Its checksum beside it, in the form `autodevhub db restore` verifies.
    assert verify(dump) == hashlib.sha256(dump.read_bytes()).hexdigest()
    assert not list(backups.glob("*.partial"))
    listing = subprocess.run(
        [str(_real_pg_dump().with_name("pg_restore")), "--list", str(dump)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "TABLE DATA public stories" in listing
    args = Path(f"{record}.args").read_text()
    assert f"--dbname=postgresql://{role}@127.0.0.1:5432/{name}?sslmode=disable" in args
    for spelling in (PASSWORD, ENCODED, "p%40ss"):
        assert spelling not in args
        assert spelling not in Path(f"{record}.env").read_text()
    assert Path(f"{record}.mode").read_text().strip() == "600"
    # pgpass escapes ':' and '\' (https://www.postgresql.org/docs/current/libpq-pgpass.html).
    escaped = PASSWORD.replace("\\", "\\\\").replace(":", "\\:")
    assert Path(f"{record}.pgpass").read_text() == f"*:*:*:*:{escaped}\n"
    assert not (tmp / "pgpass").exists(), "the pgpass file is removed after the dump"
    assert stat.S_IMODE(os.stat(dump).st_mode) & 0o077 == 0, "the dump is private"


def test_a_url_that_is_not_postgresql_fails_naming_the_file(tmp_path: Path) -> None:
    script = _pod(_cronjob())["containers"][0]["args"][0]
    (tmp_path / "database_url").write_text("sqlite:////data/x.db")
    done = subprocess.run(
        ["dash", "-c", script],
        env={
            "PATH": "/usr/bin:/bin",
            "RETENTION_DAYS": "30",
            "SECRETS_DIR": str(tmp_path),
            "BACKUP_DIR": str(tmp_path),
            "PGPASSFILE": str(tmp_path / "pgpass"),
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert f"{tmp_path}/database_url is not a postgresql:// URL" in done.stderr
