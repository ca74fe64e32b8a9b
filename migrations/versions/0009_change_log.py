"""the change log that keeps every process's derived indexes in step: index_changes, written by triggers

Statement-level triggers on memories (with transition tables: one row per cube and statement, not per memory)
and a row trigger on cubes write ``index_changes`` in the writing transaction, set the transaction-local
``memcubed.seqs`` (the writer reads it: its own changes, applied by itself, and the number for its client) and NOTIFY ``memcubed_changes`` for promptness.
An UPDATE is logged only when it changes what an index holds (status, embedding, enrichment, text, session).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 19:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = """
CREATE FUNCTION memcubed_changed(seqs text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF seqs IS NULL THEN
        RETURN;
    END IF;
    PERFORM set_config('memcubed.seqs',
                       coalesce(nullif(current_setting('memcubed.seqs', true), '') || ',', '') || seqs, true);
    PERFORM pg_notify('memcubed_changes', '');
END $$;

CREATE FUNCTION memcubed_log_memories() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    seqs text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        WITH logged AS (
            INSERT INTO index_changes (tenant_id, cube_id, op, vec_ids)
            SELECT n.tenant_id, n.cube_id, 'add', array_agg(n.vec_id ORDER BY n.vec_id)
            FROM new_rows n GROUP BY n.tenant_id, n.cube_id
            RETURNING seq)
        SELECT string_agg(seq::text, ',') INTO seqs FROM logged;
    ELSIF TG_OP = 'UPDATE' THEN
        WITH logged AS (
            INSERT INTO index_changes (tenant_id, cube_id, op, vec_ids)
            SELECT n.tenant_id, n.cube_id, 'update', array_agg(n.vec_id ORDER BY n.vec_id)
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE o.status IS DISTINCT FROM n.status OR o.embedding IS DISTINCT FROM n.embedding
               OR o.enriched_at IS DISTINCT FROM n.enriched_at OR o.content IS DISTINCT FROM n.content
               OR o.metadata IS DISTINCT FROM n.metadata OR o.session_id IS DISTINCT FROM n.session_id
               OR o.occurred_at IS DISTINCT FROM n.occurred_at OR o.cube_id IS DISTINCT FROM n.cube_id
            GROUP BY n.tenant_id, n.cube_id
            RETURNING seq)
        SELECT string_agg(seq::text, ',') INTO seqs FROM logged;
    ELSE
        WITH logged AS (
            INSERT INTO index_changes (tenant_id, cube_id, op, vec_ids)
            SELECT o.tenant_id, o.cube_id, 'remove', array_agg(o.vec_id ORDER BY o.vec_id)
            FROM old_rows o GROUP BY o.tenant_id, o.cube_id
            RETURNING seq)
        SELECT string_agg(seq::text, ',') INTO seqs FROM logged;
    END IF;
    PERFORM memcubed_changed(seqs);
    RETURN NULL;
END $$;

CREATE FUNCTION memcubed_log_cube_drop() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    logged bigint;
BEGIN
    INSERT INTO index_changes (tenant_id, cube_id, op) VALUES (OLD.tenant_id, OLD.id, 'drop') RETURNING seq INTO logged;
    PERFORM memcubed_changed(logged::text);
    RETURN NULL;
END $$;

CREATE TRIGGER memories_log_insert AFTER INSERT ON memories REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memcubed_log_memories();
CREATE TRIGGER memories_log_update AFTER UPDATE ON memories REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memcubed_log_memories();
CREATE TRIGGER memories_log_delete AFTER DELETE ON memories REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memcubed_log_memories();
CREATE TRIGGER cubes_log_drop AFTER UPDATE OF status ON cubes FOR EACH ROW
    WHEN (NEW.status = 'deleted' AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION memcubed_log_cube_drop();
CREATE TRIGGER cubes_log_delete AFTER DELETE ON cubes FOR EACH ROW EXECUTE FUNCTION memcubed_log_cube_drop();
"""

DROP = """
DROP TRIGGER IF EXISTS cubes_log_delete ON cubes;
DROP TRIGGER IF EXISTS cubes_log_drop ON cubes;
DROP TRIGGER IF EXISTS memories_log_delete ON memories;
DROP TRIGGER IF EXISTS memories_log_update ON memories;
DROP TRIGGER IF EXISTS memories_log_insert ON memories;
DROP FUNCTION IF EXISTS memcubed_log_cube_drop();
DROP FUNCTION IF EXISTS memcubed_log_memories();
DROP FUNCTION IF EXISTS memcubed_changed(text);
"""


def upgrade() -> None:
    op.create_table(
        'index_changes',
        sa.Column('seq', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('tenant_id', sa.Uuid(), nullable=False),
        sa.Column('cube_id', sa.Uuid(), nullable=False),
        sa.Column('op', sa.Text(), nullable=False),
        sa.Column('vec_ids', postgresql.ARRAY(sa.BigInteger()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('clock_timestamp()'),
                  nullable=False),
        sa.PrimaryKeyConstraint('seq'),
    )
    op.create_index('ix_index_changes_created_at', 'index_changes', ['created_at'], unique=False)
    op.execute(FUNCTIONS)


def downgrade() -> None:
    op.execute(DROP)
    op.drop_index('ix_index_changes_created_at', table_name='index_changes')
    op.drop_table('index_changes')
