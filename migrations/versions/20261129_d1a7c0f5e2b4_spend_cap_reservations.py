"""spend cap reservations: batches.worst_case_usd

Revision ID: d1a7c0f5e2b4
Revises: 5b1e0c4d9a21
Create Date: 2026-11-29 16:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d1a7c0f5e2b4"
down_revision: str | None = "5b1e0c4d9a21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("worst_case_usd", sa.Numeric(18, 8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("worst_case_usd")
