"""an index on requests' tags for the lookup by tag (PostgreSQL)

Revision ID: f6d2b8e4a0c3
Revises: e3c5a7d9b1f2
Create Date: 2026-11-29 23:30:00.000000

The dashboard's and the producer's lookup `tag=value` read requests newest
(or oldest) first and stopped at a page; a value no request carries read every
request (1.4 s at a million). A GIN index (jsonb_path_ops: it serves only
`@>`, and is the smaller and faster of the two GIN classes) answers a
containment test without reading the table. Partial: requests without tags
add nothing to it. SQLite gets none (no GIN; its lookup keeps scanning).

Intake pays for it: writing 100,000 requests into a copy of the table took
about 1.2x as long with it (one tag of 50 values) and 1.3-1.6x (three tags,
two unique per request), by COPY and by INSERT; see bench/README.md.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f6d2b8e4a0c3"
down_revision: str | None = "e3c5a7d9b1f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_index(
        "ix_requests_tags",
        "requests",
        ["tags"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"tags": "jsonb_path_ops"},
        postgresql_where=sa.text("tags IS NOT NULL"),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_requests_tags", table_name="requests")
