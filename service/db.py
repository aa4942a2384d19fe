"""Database engine and session factory; URL normalisation for SQLite and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings


def normalize_url(url: str) -> str:
    """Map `postgresql://` and `postgres://` to the psycopg 3 driver; leave others as given."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def safe_url(url: str) -> str:
    """The URL with its password hidden, fit for logs."""
    return make_url(normalize_url(url)).render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers proceed while the worker writes; busy_timeout waits instead of failing."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(settings: Settings, durable: bool = True) -> Engine:
    """Build the engine for DATABASE_URL, creating a SQLite file's directory if needed.

    `durable=False` turns off PostgreSQL's synchronous commit for work that may safely be
    redone after a database crash; the API's own writes always wait for the WAL flush.
    """
    url = normalize_url(settings.database_url.get_secret_value())
    if url.startswith("sqlite"):
        parent = settings.sqlite_parent()
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 5})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # Every statement the service runs stands alone, so autocommit saves the BEGIN/ROLLBACK
    # round trips; a dropped connection invalidates the pool instead of a ping per checkout.
    connect_args: dict[str, Any] = {"connect_timeout": 5}
    if not durable:
        connect_args["options"] = "-c synchronous_commit=off"
    return create_engine(
        url,
        # The worker's engine needs few connections: its statements are short and bounded.
        pool_size=settings.db_pool_size if durable else 2,
        max_overflow=settings.db_max_overflow if durable else 4,
        pool_recycle=1800,
        isolation_level="AUTOCOMMIT",
        connect_args=connect_args,
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def ping(engine: Engine) -> None:
    """Run a trivial query; raises when the database is unreachable."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


# PostgreSQL's SQLSTATE for "disk full".
_PG_DISK_FULL = "53100"


def is_storage_full(exc: BaseException) -> bool:
    """Whether `exc` says the database's storage is full: SQLITE_FULL, or PostgreSQL's
    disk_full. Reads still work; writes fail until space is freed."""
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        # The primary code is the low byte of an extended result code.
        return (getattr(orig, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_FULL
    return getattr(orig, "sqlstate", None) == _PG_DISK_FULL


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot serve right now (a retry may succeed), not a bug.

    True for a lost or refused connection, a server shutting down or out of resources (a full
    disk included), and a connection pool with none free in time; False for errors in the
    statement or the data.
    """
    if isinstance(exc, sa_exc.TimeoutError):
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated or is_storage_full(exc):
        return True
    if isinstance(exc.orig, sqlite3.Error):
        # SQLite raises OperationalError for bugs as well (syntax, a missing table); only a
        # lock held past busy_timeout is worth retrying.
        return "database is locked" in str(exc.orig)
    # psycopg's OperationalError is the server's state (connection, shutdown, resources).
    return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)


class StorageAlarm:
    """Whether writes failed recently because the database's storage is full.

    Raised by a failed write, cleared by a successful one or after `window` seconds without a
    new failure: a process that gets no writes (it is not ready, so it is sent none) would
    otherwise never find out that space was freed.
    """

    def __init__(self, window: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._until: float | None = None

    def raise_alarm(self) -> None:
        """A write just failed for lack of space."""
        self._until = self._clock() + self.window

    def clear(self) -> None:
        """A write just succeeded."""
        self._until = None

    @property
    def active(self) -> bool:
        """Whether a write failed for lack of space within the window."""
        return self._until is not None and self._clock() < self._until


def unavailable_reason(exc: BaseException) -> str:
    """The driver's first message line, without the SQL and parameters SQLAlchemy appends."""
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"
