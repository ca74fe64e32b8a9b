"""graph

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 15:09:13.777499
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('entities',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('cube_id', sa.Uuid(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('mentions', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['cube_id'], ['cubes.id'], name=op.f('fk_entities_cube_id_cubes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_entities_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_entities')),
    sa.UniqueConstraint('cube_id', 'key', name=op.f('uq_entities_cube_id'))
    )
    op.create_index(op.f('ix_entities_tenant_id'), 'entities', ['tenant_id'], unique=False)
    op.create_table('edges',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('cube_id', sa.Uuid(), nullable=False),
    sa.Column('source_id', sa.Uuid(), nullable=False),
    sa.Column('target_id', sa.Uuid(), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['cube_id'], ['cubes.id'], name=op.f('fk_edges_cube_id_cubes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['source_id'], ['memories.id'], name=op.f('fk_edges_source_id_memories'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['target_id'], ['memories.id'], name=op.f('fk_edges_target_id_memories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_edges')),
    sa.UniqueConstraint('source_id', 'target_id', 'type', name=op.f('uq_edges_source_id'))
    )
    op.create_index('ix_edges_cube_type', 'edges', ['cube_id', 'type'], unique=False)
    op.create_index('ix_edges_target', 'edges', ['target_id'], unique=False)
    op.create_table('memory_entities',
    sa.Column('memory_id', sa.Uuid(), nullable=False),
    sa.Column('entity_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['entity_id'], ['entities.id'], name=op.f('fk_memory_entities_entity_id_entities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['memory_id'], ['memories.id'], name=op.f('fk_memory_entities_memory_id_memories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('memory_id', 'entity_id', name=op.f('pk_memory_entities'))
    )
    op.create_index(op.f('ix_memory_entities_entity_id'), 'memory_entities', ['entity_id'], unique=False)
    op.add_column('memories', sa.Column('enrichment', postgresql.JSONB(astext_type=sa.Text()), nullable=False,
                                        server_default=sa.text("'{}'::jsonb")))
    op.add_column('memories', sa.Column('enriched_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_memories_unenriched', 'memories', ['cube_id'], unique=False,
                    postgresql_where=sa.text('enriched_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_memories_unenriched', table_name='memories', postgresql_where=sa.text('enriched_at IS NULL'))
    op.drop_column('memories', 'enriched_at')
    op.drop_column('memories', 'enrichment')
    op.drop_index(op.f('ix_memory_entities_entity_id'), table_name='memory_entities')
    op.drop_table('memory_entities')
    op.drop_index('ix_edges_target', table_name='edges')
    op.drop_index('ix_edges_cube_type', table_name='edges')
    op.drop_table('edges')
    op.drop_index(op.f('ix_entities_tenant_id'), table_name='entities')
    op.drop_table('entities')
