"""an index for the memories a memory superseded (search shows them with it)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 17:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_memories_superseded_by', 'memories', ['superseded_by'], unique=False,
                    postgresql_where=sa.text('superseded_by IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_memories_superseded_by', table_name='memories',
                  postgresql_where=sa.text('superseded_by IS NOT NULL'))
