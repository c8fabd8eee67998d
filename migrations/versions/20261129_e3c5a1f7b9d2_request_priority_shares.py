"""requests carry a priority and a share key; assembly's orders get their indexes

Revision ID: e3c5a1f7b9d2
Revises: b7e2a9c4f1d3
Create Date: 2026-11-29 20:30:00.000000

Assembly takes queued requests highest priority first, then oldest, overall or
within each share-tag value (issue 15): one LIMIT query per priority present,
each an index range scan (ascending columns: SQLite does not reflect DESC, and
alembic check must stay clean). Existing rows get priority 0 and no share key.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e3c5a1f7b9d2"
down_revision: str | None = "b7e2a9c4f1d3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUED = "state = 'queued'"


def upgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("priority", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(
            sa.Column("share_key", sa.String(length=200), server_default="", nullable=False)
        )
    op.create_index(
        "ix_requests_queued_priority",
        "requests",
        ["priority", "created_at", "id"],
        postgresql_where=sa.text(QUEUED),
        sqlite_where=sa.text(QUEUED),
    )
    op.create_index(
        "ix_requests_queued_share",
        "requests",
        ["share_key", "priority", "created_at", "id"],
        postgresql_where=sa.text(QUEUED),
        sqlite_where=sa.text(QUEUED),
    )


def downgrade() -> None:
    op.drop_index("ix_requests_queued_share", table_name="requests")
    op.drop_index("ix_requests_queued_priority", table_name="requests")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_column("share_key")
        batch_op.drop_column("priority")
