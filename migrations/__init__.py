"""Alembic migrations: the only way memcubed's schema changes."""
