"""deadlines: requests keep one; results say how they were obtained; fallbacks

Revision ID: e4c8d2a6b190
Revises: e3c5a1f7b9d2
Create Date: 2026-11-29 20:30:00.000000

A request with a deadline that its batch will not meet is sent through the
synchronous Messages API (a `fallbacks` row tracks the call), and its result
is stored with `via = 'sync'` and no batch. Existing results were all batch
results.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from batchline.models.base import UtcDateTime

revision: str = "e4c8d2a6b190"
down_revision: str | None = "e3c5a1f7b9d2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEADLINE_OPEN = "deadline_at IS NOT NULL AND state IN ('queued', 'in_batch')"


def upgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deadline_at", UtcDateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_requests_deadline_open",
            ["deadline_at"],
            unique=False,
            postgresql_where=sa.text(DEADLINE_OPEN),
            sqlite_where=sa.text(DEADLINE_OPEN),
        )
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("via", sa.String(length=8), server_default="batch", nullable=False)
        )
        batch_op.alter_column("batch_id", existing_type=sa.BigInteger(), nullable=True)
        batch_op.create_check_constraint("via", "via IN ('batch', 'sync')")
        batch_op.create_check_constraint("via_batch", "(via = 'sync') = (batch_id IS NULL)")
        batch_op.create_index(
            "uq_results_sync_request",
            ["request_id"],
            unique=True,
            postgresql_where=sa.text("via = 'sync'"),
            sqlite_where=sa.text("via = 'sync'"),
        )
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "fallbacks",
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", big_id, nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("next_try_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", UtcDateTime(timezone=True), nullable=True),
        sa.Column("deadline_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('pending', 'calling', 'done', 'failed')", name=op.f("ck_fallbacks_state")
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_fallbacks_batch_id_batches"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_fallbacks_request_id_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_fallbacks")),
    )
    op.create_index("ix_fallbacks_batch_id", "fallbacks", ["batch_id"], unique=False)
    op.create_index(
        "ix_fallbacks_open",
        "fallbacks",
        ["next_try_at"],
        unique=False,
        postgresql_where=sa.text("state IN ('pending', 'calling')"),
        sqlite_where=sa.text("state IN ('pending', 'calling')"),
    )


def downgrade() -> None:
    op.drop_index("ix_fallbacks_open", table_name="fallbacks")
    op.drop_index("ix_fallbacks_batch_id", table_name="fallbacks")
    op.drop_table("fallbacks")
    op.execute("DELETE FROM results WHERE via = 'sync'")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_index("uq_results_sync_request")
        batch_op.drop_constraint("via_batch", type_="check")
        batch_op.drop_constraint("via", type_="check")
        batch_op.alter_column("batch_id", existing_type=sa.BigInteger(), nullable=False)
        batch_op.drop_column("via")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index("ix_requests_deadline_open")
        batch_op.drop_column("deadline_at")
