"""Alembic migrations from an empty database up to head, down to base, and up again."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from app.config import to_psycopg_url
from app.db import alembic_config, downgrade, migrate
from app.models import Base
from tests.conftest import Databases, pg_sqlalchemy_url, sql

# The foundation's tables; later migrations add more.
TABLES = {"alembic_version", "audit_log", "idempotency_records", "tenants", "api_keys", "cubes", "memories",
          "memory_versions"}


def tables(url: str) -> set[str]:
    rows = sql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r[0] for r in rows}


def relations(url: str) -> set[str]:
    """Tables, indexes, sequences and views of the public schema."""
    rows = sql(url, "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i', 'S', 'v', 'm')")
    return {r[0] for r in rows}


def version(url: str) -> list[str]:
    return [r[0] for r in sql(url, "SELECT version_num FROM alembic_version")]


def schema_diff(url: str) -> list[object]:
    engine = create_engine(to_psycopg_url(url))
    try:
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))
    finally:
        engine.dispose()


def test_up_down_up_on_an_empty_database(databases: Databases) -> None:
    url = pg_sqlalchemy_url(databases.create())
    head = ScriptDirectory.from_config(alembic_config(to_psycopg_url(url))).get_current_head()
    assert head is not None
    assert tables(url) == set()

    migrate(to_psycopg_url(url))
    at_head = tables(url)
    assert at_head >= TABLES
    assert version(url) == [head]
    # The migrations build exactly what the models describe.
    assert schema_diff(url) == []
    with_schema = relations(url)
    assert {"uq_cubes_tenant_name_live", "ix_memories_cube_created", "ix_audit_tenant_at"} <= with_schema

    # Applying again is a no-op.
    migrate(to_psycopg_url(url))
    assert version(url) == [head]

    # Down with data in the tables.
    sql(url, "INSERT INTO tenants (id, name, created_at) VALUES (gen_random_uuid(), 'x', now())")
    downgrade(to_psycopg_url(url), "base")
    assert tables(url) == {"alembic_version"}
    assert relations(url) <= {"alembic_version", "alembic_version_pkc"}
    assert version(url) == []

    migrate(to_psycopg_url(url))
    assert tables(url) == at_head
    assert version(url) == [head]
    assert schema_diff(url) == []
    assert sql(url, "SELECT count(*) FROM tenants") == [(0,)]


def test_the_service_migrates_at_start(databases: Databases) -> None:
    """``open_database`` (what serve, the CLI and build use) brings an empty database to head."""
    from app.config import Settings
    from app.container import open_database

    url = pg_sqlalchemy_url(databases.create())
    _, engine, _ = open_database(Settings(database_url=url))
    engine.dispose()
    assert tables(url) >= TABLES
