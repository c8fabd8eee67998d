"""the write path without per-row key checks

Revision ID: a4c8f2e61b07
Revises: e4c8d2a6b190
Create Date: 2026-11-29 20:40:00.000000

Writing a result checked two foreign keys row by row (its batch and its
request), which doubled the cost of writing results; moving a request into a
batch checked its batch_id the same way. The service writes these columns
only with ids it has just read or created, and the purge deletes a request's
results with it, so the keys go. The idempotency key stays unique where set:
its index no longer holds an entry for every request without one.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a4c8f2e61b07"
down_revision: str | None = "e4c8d2a6b190"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SET = sa.text("idempotency_key IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_constraint("fk_results_batch_id_batches", type_="foreignkey")
        batch_op.drop_constraint("fk_results_request_id_requests", type_="foreignkey")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_constraint("fk_requests_batch_id_batches", type_="foreignkey")
        batch_op.drop_constraint("uq_requests_idempotency_key", type_="unique")
        batch_op.create_index(
            "uq_requests_idempotency_key",
            ["idempotency_key"],
            unique=True,
            postgresql_where=_SET,
            sqlite_where=_SET,
        )


def downgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index("uq_requests_idempotency_key")
        batch_op.create_unique_constraint("uq_requests_idempotency_key", ["idempotency_key"])
        batch_op.create_foreign_key(
            "fk_requests_batch_id_batches", "batches", ["batch_id"], ["id"], ondelete="SET NULL"
        )
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_results_request_id_requests",
            "requests",
            ["request_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_foreign_key(
            "fk_results_batch_id_batches", "batches", ["batch_id"], ["id"], ondelete="CASCADE"
        )
