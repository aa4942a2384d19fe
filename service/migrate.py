"""Apply Alembic migrations and report whether the database is at head."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from service.db import make_engine, normalize_url, safe_url
from service.settings import Settings

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger("service.migrate")
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic Config pointing at the bundled migrations; no alembic.ini needed."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """The newest revision shipped with this code."""
    from alembic.script import ScriptDirectory

    config = alembic_config("sqlite://")
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(settings: Settings, revision: str = "head") -> str | None:
    """Upgrade the configured database to `revision`; returns the revision reached."""
    from alembic import command

    engine = make_engine(settings)
    try:
        log.info(
            "applying migrations",
            extra={"database": safe_url(settings.database_url.get_secret_value())},
        )
        config = alembic_config(settings.database_url.get_secret_value())
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
        reached = current_revision(engine)
        log.info("migrations applied", extra={"revision": reached})
        return reached
    finally:
        engine.dispose()
