"""jobs, cube policies, consolidation and forgetting columns on memories

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('jobs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('cube_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('progress', sa.Float(), nullable=False),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['cube_id'], ['cubes.id'], name=op.f('fk_jobs_cube_id_cubes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_jobs_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    op.create_index('ix_jobs_tenant_created', 'jobs', ['tenant_id', 'created_at'], unique=False)
    op.create_index('ix_jobs_cube_status', 'jobs', ['cube_id', 'status'], unique=False)
    op.create_table('cube_policies',
    sa.Column('cube_id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('enabled', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('max_active', sa.Integer(), nullable=True),
    sa.Column('ttl_days', sa.Float(), nullable=True),
    sa.Column('half_life_days', sa.Float(), nullable=False),
    sa.Column('min_age_hours', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['cube_id'], ['cubes.id'], name=op.f('fk_cube_policies_cube_id_cubes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_cube_policies_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('cube_id', name=op.f('pk_cube_policies'))
    )
    op.add_column('memories', sa.Column('merged_into', sa.Uuid(), nullable=True))
    op.add_column('memories', sa.Column('superseded_by', sa.Uuid(), nullable=True))
    op.create_foreign_key(op.f('fk_memories_merged_into_memories'), 'memories', 'memories', ['merged_into'], ['id'], ondelete='SET NULL')
    op.create_foreign_key(op.f('fk_memories_superseded_by_memories'), 'memories', 'memories', ['superseded_by'], ['id'], ondelete='SET NULL')
    op.add_column('memories', sa.Column('tier', sa.String(length=8), server_default=sa.text("'short'"), nullable=False))
    op.add_column('memories', sa.Column('heat', sa.Float(), server_default=sa.text('0'), nullable=False))
    op.add_column('memories', sa.Column('useful_count', sa.Integer(), server_default=sa.text('0'), nullable=False))
    op.add_column('memories', sa.Column('not_useful_count', sa.Integer(), server_default=sa.text('0'), nullable=False))
    op.add_column('memories', sa.Column('wrong_count', sa.Integer(), server_default=sa.text('0'), nullable=False))


def downgrade() -> None:
    op.drop_column('memories', 'wrong_count')
    op.drop_column('memories', 'not_useful_count')
    op.drop_column('memories', 'useful_count')
    op.drop_column('memories', 'heat')
    op.drop_column('memories', 'tier')
    op.drop_constraint(op.f('fk_memories_superseded_by_memories'), 'memories', type_='foreignkey')
    op.drop_constraint(op.f('fk_memories_merged_into_memories'), 'memories', type_='foreignkey')
    op.drop_column('memories', 'superseded_by')
    op.drop_column('memories', 'merged_into')
    op.drop_table('cube_policies')
    op.drop_index('ix_jobs_cube_status', table_name='jobs')
    op.drop_index('ix_jobs_tenant_created', table_name='jobs')
    op.drop_table('jobs')
