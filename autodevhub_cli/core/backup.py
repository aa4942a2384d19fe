"""Database backups and restores: pg_dump/pg_restore for PostgreSQL, the SQLite online backup
API for SQLite. Each backup gets a SHA-256 sidecar; restores verify it and refuse to overwrite a
database that holds data unless forced. Retention deletes backups older than N days, judged by the
timestamp in their name (not file times, which copies change).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict
from urllib.parse import unquote, urlsplit, urlunsplit

from autodevhub_cli.core.adapters import process
from autodevhub_cli.core.errors import AutodevhubError, ConfigError, ToolError
from autodevhub_cli.core.redact import redact_url as redact  # the URL without its password

if TYPE_CHECKING:
    from autodevhub_cli.core.environment import Environment

STAMP = "%Y%m%dT%H%M%SZ"
_NAME = re.compile(r"^(?P<prefix>.+)-(?P<stamp>\d{8}T\d{6}Z)\.(?P<ext>dump|sqlite3)$")


class BackupError(AutodevhubError):
    """A backup or restore could not be done."""


@dataclass
class Backup:
    """One backup file and what is known about it."""

    path: str
    engine: str
    database: str
    size_bytes: int
    sha256: str
    created_at: str
    seconds: float = 0.0
    deleted: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)


def engine_of(url: str) -> str:
    """`postgresql` or `sqlite`, from a SQLAlchemy-style URL."""
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    if scheme == "sqlite":
        return "sqlite"
    raise ConfigError(
        f"Unsupported database URL {redact(url)!r}: backups handle postgresql:// and sqlite:///.",
    )


def libpq_url(url: str) -> str:
    """A URL pg_dump and psql accept (no SQLAlchemy driver suffix)."""
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if scheme.split("+")[0] in ("postgresql", "postgres") else url


def libpq_dsn(url: str) -> tuple[str, str | None]:
    """(the libpq URL without its password, the password percent-decoded or None): the URL goes
    on the client tools' command line, which every process can read; the password does not."""
    url = libpq_url(url)
    parts = urlsplit(url)
    if parts.password is None:
        return url, None
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc}")), unquote(parts.password)


def sqlite_path(url: str) -> Path:
    """The file of a `sqlite:///relative` or `sqlite:////absolute` URL."""
    path = url.split("://", 1)[1]
    if not path.startswith("/") or path in ("/", "/:memory:"):
        raise ConfigError(f"{url!r} is not a SQLite file URL.")
    return Path(path[1:])  # sqlite:///rel/x.db -> rel/x.db; sqlite:////abs/x.db -> /abs/x.db


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def backup(
    database_url: str,
    dest: Path,
    *,
    prefix: str = "autodevhub",
    retention_days: int = 30,
    now: dt.datetime | None = None,
) -> Backup:
    """Back up the database into `dest`, write its checksum, then apply retention."""
    started = time.perf_counter()
    moment = now or dt.datetime.now(dt.UTC)
    engine = engine_of(database_url)
    dest.mkdir(parents=True, exist_ok=True)
    ext = "dump" if engine == "postgresql" else "sqlite3"
    final = dest / f"{prefix}-{moment.strftime(STAMP)}.{ext}"
    partial = final.with_name(final.name + ".partial")
    try:
        if engine == "postgresql":
            _run(
                [
                    "pg_dump",
                    "--format=custom",
                    "--no-owner",
                    f"--file={partial}",
                    f"--dbname={libpq_dsn(database_url)[0]}",
                ],
                "pg_dump",
                database_url,
            )
        else:
            source_path = sqlite_path(database_url)
            if not source_path.is_file():
                raise BackupError(f"The SQLite database {source_path} does not exist.")
            _sqlite_copy(source_path, partial)
        checksum = sha256_of(partial)
        os.replace(partial, final)
        final.with_name(final.name + ".sha256").write_text(f"{checksum}  {final.name}\n")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    deleted = prune(dest, retention_days, prefix=prefix, now=moment)
    return Backup(
        path=str(final),
        engine=engine,
        database=redact(database_url),
        size_bytes=final.stat().st_size,
        sha256=checksum,
        created_at=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        seconds=round(time.perf_counter() - started, 3),
        deleted=deleted,
    )


def prune(
    dest: Path, retention_days: int, *, prefix: str = "autodevhub", now: dt.datetime | None = None
) -> list[str]:
    """Delete backups (and their checksums) older than `retention_days`; return their names."""
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=retention_days)
    deleted = []
    for path in sorted(dest.iterdir()) if dest.is_dir() else []:
        match = _NAME.match(path.name)
        if not match or match.group("prefix") != prefix:
            continue
        stamp = dt.datetime.strptime(match.group("stamp"), STAMP).replace(tzinfo=dt.UTC)
        if stamp < cutoff:
            path.unlink()
            path.with_name(path.name + ".sha256").unlink(missing_ok=True)
            deleted.append(path.name)
    return deleted


def verify(path: Path) -> str:
    """Check a backup against its `.sha256` sidecar; return the checksum."""
    sidecar = path.with_name(path.name + ".sha256")
    if not path.is_file():
        raise ConfigError(f"Backup {path} does not exist.")
    if not sidecar.is_file():
        raise BackupError(
            f"Backup {path.name} has no checksum file ({sidecar.name}); it cannot be verified.",
            hint="Restore only backups made by `autodevhub db backup`, or recreate the sidecar "
            "with `sha256sum` if you trust the file.",
        )
    expected = sidecar.read_text().split()[0]
    actual = sha256_of(path)
    if actual != expected:
        raise BackupError(
            f"Backup {path.name} is corrupt: its SHA-256 is {actual[:16]}..., the checksum file "
            f"says {expected[:16]}....",
            hint="Use another backup.",
        )
    return actual


# What `restore` did, JSON-ready ("from" is a keyword: the functional form).
Restored = TypedDict(
    "Restored",
    {
        "database": str,
        "from": str,
        "sha256": str,
        "seconds": float,
        "replaced_rows": dict[str, int],
    },
)


def restore(database_url: str, source: Path, *, force: bool = False) -> Restored:
    """Restore `source` into the database; refuse a database that holds data unless forced."""
    engine = engine_of(database_url)
    checksum = verify(source)
    if engine == "postgresql" and source.suffix != ".dump":
        raise ConfigError(f"{source.name} is not a PostgreSQL backup (.dump).")
    if engine == "sqlite" and source.suffix != ".sqlite3":
        raise ConfigError(f"{source.name} is not a SQLite backup (.sqlite3).")
    rows = row_counts(database_url)
    if any(rows.values()) and not force:
        holding = ", ".join(f"{t} ({n})" for t, n in sorted(rows.items()) if n)
        raise BackupError(
            f"The database {redact(database_url)} is not empty (rows in {holding}); restoring "
            "would overwrite them.",
            hint="Pass --force to replace its contents with the backup.",
        )
    started = time.perf_counter()
    if engine == "postgresql":
        _run(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--single-transaction",
                f"--dbname={libpq_dsn(database_url)[0]}",
                str(source),
            ],
            "pg_restore",
            database_url,
        )
    else:
        target_path = sqlite_path(database_url)
        target_path.parent.mkdir(parents=True, exist_ok=True)
        _sqlite_copy(source, target_path)
    return {
        "database": redact(database_url),
        "from": str(source),
        "sha256": checksum,
        "seconds": round(time.perf_counter() - started, 3),
        "replaced_rows": rows,
    }


def _sqlite_copy(source: Path, target: Path) -> None:
    """Copy a SQLite database page by page with the online backup API (safe while in use)."""
    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    writer = sqlite3.connect(target)
    try:
        reader.backup(writer)
    finally:
        writer.close()
        reader.close()


def row_counts(database_url: str) -> dict[str, int]:
    """Rows per table of the database (an empty dict for a database without tables)."""
    if engine_of(database_url) == "sqlite":
        path = sqlite_path(database_url)
        if not path.exists():
            return {}
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = [
                r[0]
                for r in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
                )
            ]
            return {
                t: connection.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables
            }
        finally:
            connection.close()
    # psql, like pg_dump and pg_restore: the CLI needs PostgreSQL's client tools, not a driver.
    psql = ["psql", "--no-psqlrc", "--tuples-only", "--no-align", "--quiet"]
    target = f"--dbname={libpq_dsn(database_url)[0]}"
    listed = _run(
        [
            *psql,
            target,
            "--command",
            "SELECT tablename FROM pg_tables "
            "WHERE schemaname = current_schema() ORDER BY tablename",
        ],
        "psql",
        database_url,
    )
    names = [line for line in listed.splitlines() if line]
    if not names:
        return {}
    counts = " UNION ALL ".join(_count_query(name) for name in names)
    rows = _run([*psql, "--field-separator=\t", target, "--command", counts], "psql", database_url)
    found = {}
    for line in rows.splitlines():
        name, _, count = line.rpartition("\t")
        if name:
            found[name] = int(count)
    return found


def _count_query(table: str) -> str:
    literal = table.replace("'", "''")
    identifier = table.replace('"', '""')
    return f"SELECT '{literal}', count(*) FROM \"{identifier}\""


def _run(command: list[str], what: str, database_url: str) -> str:
    """Run a PostgreSQL client tool; the URL's password reaches it in a 0600 pgpass file."""
    import tempfile

    env = dict(os.environ)
    password = libpq_dsn(database_url)[1]
    with tempfile.TemporaryDirectory(prefix="autodevhub-pg-") as private:
        if password is not None:
            # Any host, port, database and user: the file holds this one password only.
            escaped = password.replace("\\", "\\\\").replace(":", "\\:")
            pgpass = Path(private) / "pgpass"
            fd = os.open(pgpass, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(f"*:*:*:*:{escaped}\n")
            env["PGPASSFILE"] = str(pgpass)
            env.pop("PGPASSWORD", None)
        return _run_tool(command, what, database_url, env)


def _run_tool(command: list[str], what: str, database_url: str, env: dict[str, str]) -> str:
    def hide(text: str) -> str:
        for spelling in (libpq_url(database_url), database_url, libpq_dsn(database_url)[0]):
            text = text.replace(spelling, redact(spelling))
        return text

    proc = process.run(
        command,
        what=what,
        timeout=3600,
        env=env,
        check=False,
        shown=[hide(part) for part in command],
        missing_hint="Install the PostgreSQL client tools (Debian: postgresql-client).",
    )
    if proc.returncode != 0:
        raise ToolError(
            f"{what} failed for {redact(database_url)}.",
            command=[hide(part) for part in command],
            returncode=proc.returncode,
            output=hide(proc.stderr),
        )
    return proc.stdout


def _sqlite_volume(environment: Environment) -> tuple[str, Path, str] | None:
    """(Docker volume, file path in the container, mount path) of the SQLite file that the
    variable `backups.url_env` of the component `backups.component` names, on one of its
    volumes; None when the environment declares no such component or its URL is not SQLite."""
    declared = environment.backups
    component = environment.components.get(declared.component or "")
    if component is None or declared.url_env is None:
        return None
    url = component.env.get(declared.url_env, "")
    if not url.startswith("sqlite"):
        return None
    inside = sqlite_path(url)
    for name, volume in component.volumes.items():
        if inside.is_relative_to(volume.path):
            return f"{environment.compose_project()}_{name}", inside, volume.path
    return None


def database_url_for(environment: Environment, explicit: str | None) -> str:
    """The database to back up: the one given (--database-url), or on Compose the SQLite file
    of the component the environment's `backups` declares, on that component's volume."""
    if explicit:
        return explicit
    located = _sqlite_volume(environment) if environment.target == "compose" else None
    if located is not None:
        volume, inside, mount = located
        proc = process.run(
            ["docker", "volume", "inspect", "--format", "{{.Mountpoint}}", volume],
            what="docker volume inspect",
            check=False,
            missing_hint="Install the Docker CLI, or pass --database-url.",
        )
        mountpoint = proc.stdout.strip()
        if proc.returncode != 0 or not mountpoint or not os.access(mountpoint, os.R_OK):
            raise ConfigError(
                f"The {environment.name} database lives in the Docker volume {volume}, which "
                "cannot be read from here (not deployed, or not on this host's engine).",
                hint="Deploy it first, run this as a user who can read Docker volumes, or pass "
                "--database-url.",
            )
        return f"sqlite:///{Path(mountpoint) / inside.relative_to(mount)}"
    secret = environment.backups.database_url
    where = f" (the value of Secret {secret.secret}, key {secret.key})" if secret else ""
    declared = ""
    if environment.target == "compose":
        declared = (
            ", or declare backups.component and backups.url_env (the component whose SQLite "
            "file it is, and the env variable naming it)"
        )
    raise ConfigError(
        f"No database URL for environment {environment.name!r}.",
        hint=f"Pass --database-url or set DATABASE_URL{where}{declared}.",
    )
