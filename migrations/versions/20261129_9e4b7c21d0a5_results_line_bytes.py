"""results keep the API's line as bytes

Revision ID: 9e4b7c21d0a5
Revises: d1a7c0f5e2b4
Create Date: 2026-11-29 16:40:00.000000

A result was kept as JSONB, which refuses `\\u0000` (valid JSON the API may
return): one such reply wedged its whole batch's ingestion. The line is now
kept as the exact bytes the API sent. Existing rows get their line rebuilt
from the stored document (the same JSON, not the original bytes, which were
never kept).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import batchline.models.base

revision: str = "9e4b7c21d0a5"
down_revision: str | None = "d1a7c0f5e2b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TO_LINE = {
    "postgresql": "convert_to(json_build_object('custom_id', custom_id, 'result', body)::text, "
    "'UTF8')",
    "sqlite": "CAST(json_object('custom_id', custom_id, 'result', json(body)) AS BLOB)",
}
# Back to JSONB, whose text cannot hold \u0000: such characters become U+FFFD.
_TO_BODY = {
    "postgresql": "COALESCE((replace(convert_from(line, 'UTF8'), '\\u0000', '\\ufffd')::jsonb)"
    " -> 'result', '{\"type\": \"malformed\"}'::jsonb)",
    "sqlite": "COALESCE(json_extract(CAST(line AS TEXT), '$.result'), '{\"type\": \"malformed\"}')",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("line", sa.LargeBinary(), nullable=True))
    op.execute(f"UPDATE results SET line = {_TO_LINE[dialect]}")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_column("body")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    document = batchline.models.base.JsonDocument
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body", document, nullable=True))
    op.execute(f"UPDATE results SET body = {_TO_BODY[dialect]}")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.alter_column("body", existing_type=document, nullable=False)
        batch_op.drop_column("line")
