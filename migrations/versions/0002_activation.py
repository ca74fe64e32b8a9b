"""activation memory metadata

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 15:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('activations',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('cube_id', sa.Uuid(), nullable=False),
    sa.Column('model_id', sa.String(length=200), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('tokens', sa.Integer(), nullable=False),
    sa.Column('token_ids', sa.LargeBinary(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('prefix_text', sa.Text(), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('tier', sa.String(length=8), nullable=True),
    sa.Column('precision', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('hits', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['cube_id'], ['cubes.id'], name=op.f('fk_activations_cube_id_cubes'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_activations_tenant_id_tenants'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activations'))
    )
    op.create_index('ix_activations_tenant_cube', 'activations', ['tenant_id', 'cube_id'], unique=False)
    op.create_index('uq_activations_cube_fp_tokens_live', 'activations', ['cube_id', 'fingerprint', 'token_hash'],
                    unique=True, postgresql_where=sa.text("status = 'active'"))


def downgrade() -> None:
    op.drop_index('uq_activations_cube_fp_tokens_live', table_name='activations',
                  postgresql_where=sa.text("status = 'active'"))
    op.drop_index('ix_activations_tenant_cube', table_name='activations')
    op.drop_table('activations')
