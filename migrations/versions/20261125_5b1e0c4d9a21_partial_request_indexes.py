"""partial request indexes

Revision ID: 5b1e0c4d9a21
Revises: c33ca05f43e7
Create Date: 2026-11-25 09:50:00.000000

A request leaves the queued, in-batch and prefix indexes as it moves on, so
the UPDATEs that settle a batch's requests write fewer index entries.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b1e0c4d9a21"
down_revision: str | None = "c33ca05f43e7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _partial(name: str, columns: list[str], where: str) -> None:
    op.create_index(
        name,
        "requests",
        columns,
        unique=False,
        postgresql_where=sa.text(where),
        sqlite_where=sa.text(where),
    )


def upgrade() -> None:
    op.drop_index("ix_requests_state_created_at", table_name="requests")
    op.drop_index("ix_requests_batch_id", table_name="requests")
    op.drop_index("ix_requests_prefix_hash", table_name="requests")
    _partial("ix_requests_queued", ["created_at", "id"], "state = 'queued'")
    _partial("ix_requests_batch_id", ["batch_id"], "batch_id IS NOT NULL")
    _partial("ix_requests_prefix_hash", ["prefix_hash", "state"], "prefix_hash IS NOT NULL")


def downgrade() -> None:
    op.drop_index("ix_requests_prefix_hash", table_name="requests")
    op.drop_index("ix_requests_batch_id", table_name="requests")
    op.drop_index("ix_requests_queued", table_name="requests")
    op.create_index("ix_requests_prefix_hash", "requests", ["prefix_hash", "state"])
    op.create_index("ix_requests_batch_id", "requests", ["batch_id"])
    op.create_index("ix_requests_state_created_at", "requests", ["state", "created_at"])
