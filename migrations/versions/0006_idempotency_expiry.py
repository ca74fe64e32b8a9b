"""idempotency records expire (index on created_at); raw API keys removed from stored responses

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 16:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f('ix_idempotency_records_created_at'), 'idempotency_records', ['created_at'], unique=False)
    # Responses of key-creating requests were stored with the key itself: keep all but the key.
    op.execute("""UPDATE idempotency_records
                  SET response = response || '{"api_key": null, "api_key_withheld": true}'::jsonb
                  WHERE response ? 'api_key' AND response->>'api_key' IS NOT NULL""")


def downgrade() -> None:
    op.drop_index(op.f('ix_idempotency_records_created_at'), table_name='idempotency_records')
