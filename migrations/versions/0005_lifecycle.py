"""parametric memory, snapshots, forget requests, scoped keys, cube provenance

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 09:15:38.461818
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('adapters',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('cube_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('base_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('base_model', sa.String(length=200), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('alpha', sa.Integer(), nullable=False),
    sa.Column('target_modules', postgresql.ARRAY(sa.String(length=100)), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('job_id', sa.Uuid(), nullable=True),
    sa.Column('metrics', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['cube_id'], ['cubes.id'], name=op.f('fk_adapters_cube_id_cubes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_adapters_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_adapters')),
    sa.UniqueConstraint('cube_id', 'name', 'version', name=op.f('uq_adapters_cube_id'))
    )
    op.create_index('ix_adapters_tenant_cube', 'adapters', ['tenant_id', 'cube_id'], unique=False)
    op.create_table('forget_requests',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('cube_id', sa.Uuid(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('detector', sa.String(length=16), nullable=False),
    sa.Column('policy', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('memory_ids', postgresql.ARRAY(sa.Uuid()), nullable=False),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('key_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reverted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['cube_id'], ['cubes.id'], name=op.f('fk_forget_requests_cube_id_cubes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_forget_requests_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forget_requests'))
    )
    op.create_index('ix_forget_requests_tenant_cube', 'forget_requests', ['tenant_id', 'cube_id', 'created_at'], unique=False)
    op.create_table('snapshots',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('cube_id', sa.Uuid(), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('memory_count', sa.Integer(), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('key_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['cube_id'], ['cubes.id'], name=op.f('fk_snapshots_cube_id_cubes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_snapshots_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_snapshots'))
    )
    op.create_index('ix_snapshots_tenant_cube', 'snapshots', ['tenant_id', 'cube_id', 'created_at'], unique=False)
    op.add_column('api_keys', sa.Column('cube_ids', postgresql.ARRAY(sa.Uuid()), nullable=True))
    op.add_column('api_keys', sa.Column('permission', sa.String(length=8), server_default=sa.text("'admin'"), nullable=False))
    op.add_column('cubes', sa.Column('provenance', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False))
    op.add_column('cubes', sa.Column('forget_policy', sa.String(length=8), server_default=sa.text("'archive'"), nullable=False))


def downgrade() -> None:
    op.drop_column('cubes', 'forget_policy')
    op.drop_column('cubes', 'provenance')
    op.drop_column('api_keys', 'permission')
    op.drop_column('api_keys', 'cube_ids')
    op.drop_index('ix_snapshots_tenant_cube', table_name='snapshots')
    op.drop_table('snapshots')
    op.drop_index('ix_forget_requests_tenant_cube', table_name='forget_requests')
    op.drop_table('forget_requests')
    op.drop_index('ix_adapters_tenant_cube', table_name='adapters')
    op.drop_table('adapters')
