"""Database engine, the embedded Postgres, and migrations."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings, to_psycopg_url

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def resolve_database_url(settings: Settings) -> str:
    """The configured Postgres, or a real embedded one (pgserver) started under the data dir."""
    if settings.database_url:
        return to_psycopg_url(settings.database_url)
    import pgserver  # imported here: production deployments never start it

    settings.pg_dir.mkdir(parents=True, exist_ok=True)
    # "stop" leaves a server that another memcubed process still uses running (pgserver counts users).
    server = pgserver.get_server(settings.pg_dir, cleanup_mode="stop")
    log.info("embedded Postgres running in %s", settings.pg_dir)
    return to_psycopg_url(server.get_uri())


def make_engine(url: str) -> Engine:
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True, future=True)


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision``; the only way the schema changes."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def open_database(settings: Settings) -> tuple[str, Engine, sessionmaker[Session]]:
    """Resolve (or start) Postgres and apply migrations."""
    url = resolve_database_url(settings)
    migrate(url)
    engine = make_engine(url)
    return url, engine, make_sessions(engine)


def ping(engine: Engine) -> None:
    """Raises when the database does not answer (readiness)."""
    with engine.connect() as conn:
        conn.execute(text("select 1"))
