"""requests keep the anthropic-beta names they need

Revision ID: b7e2a9c4f1d3
Revises: 9e4b7c21d0a5
Create Date: 2026-11-29 18:00:00.000000

A request enqueued with `betas=` may use beta parameters; its batch must be
created with the same anthropic-beta header, so the names are kept (sorted,
comma-joined) and assembly groups requests by them. NULL: no betas.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7e2a9c4f1d3"
down_revision: str | None = "9e4b7c21d0a5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("betas", sa.String(length=2100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_column("betas")
