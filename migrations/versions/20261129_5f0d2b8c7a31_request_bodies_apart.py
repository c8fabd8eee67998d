"""request bodies in a table of their own

Revision ID: 5f0d2b8c7a31
Revises: f6d2b8e4a0c3
Create Date: 2026-11-29 23:40:00.000000

Every state move of a request (into a batch, settled, back to the queue)
rewrote its whole row, and with the body inline that row was ~1.7 KB:
PostgreSQL keeps a value that size in the row (TOAST starts above ~2 KB a
row, and neither toast_tuple_target nor STORAGE EXTERNAL moves it out). The
body never changes after intake, so it moves to `request_bodies`, written in
the same transaction as its request, and a move rewrites a row of ~200 bytes
(see bench/README.md for the measurements). The existing bodies are copied
over. On PostgreSQL the dropped column's bytes stay in each old row version
until that row is next written (dropping a column does not rewrite the
table); rows written after this migration are narrow.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5f0d2b8c7a31"
down_revision: str | None = "f6d2b8e4a0c3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "request_bodies",
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_request_bodies")),
    )
    op.execute("INSERT INTO request_bodies (request_id, params) SELECT id, params FROM requests")
    # Not in batch mode: SQLite (3.35+) drops an unindexed column in place, so the
    # table is not rebuilt and its running-totals triggers stay.
    op.drop_column("requests", "params")


def downgrade() -> None:
    op.add_column("requests", sa.Column("params", sa.Text(), nullable=True))
    op.execute(
        "UPDATE requests SET params = (SELECT b.params FROM request_bodies AS b"
        " WHERE b.request_id = requests.id)"
    )
    if op.get_bind().dialect.name == "postgresql":
        # Every request has its body, so this holds. SQLite cannot add NOT NULL in
        # place; there the column stays nullable.
        op.alter_column("requests", "params", nullable=False)
    op.drop_table("request_bodies")
