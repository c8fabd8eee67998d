"""running totals of requests and results kept by triggers; snapshots over time

Revision ID: e3c5a7d9b1f2
Revises: a4c8f2e61b07
Create Date: 2026-11-29 20:30:00.000000

Status, the Prometheus scrape and the dashboard showed counts and sums that
scanned every request and result (seconds at a million). The triggers here
keep them as they change, in the writers' own transactions, so they are exact
without any writer calling anything. PostgreSQL: one statement trigger per
operation over its transition tables appends a row of differences per key
(never an in-place update: concurrent writers share no counter row, so they
neither wait nor deadlock on it). SQLite (one writer at a time): row triggers
add to the key's one row. The totals start from a count of what is there,
taken after the triggers exist and under their table locks. A result with no
batch (a synchronous fallback for a deadline) is totalled under batch 0.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e3c5a7d9b1f2"
down_revision: str | None = "a4c8f2e61b07"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RESULT_KEY = "batch_id, day, result_type, error_type, duplicate, orphan, priced"
RESULT_SUMS = (
    "results, input_tokens, output_tokens, cache_write_5m_tokens,"
    " cache_write_1h_tokens, cache_read_tokens, cost_usd"
)


def _result_rows(source: str, sign: str, day: str) -> str:
    """Totals of `source`'s result rows per key, multiplied by `sign`."""
    return f"""
    INSERT INTO result_totals ({RESULT_KEY}, {RESULT_SUMS})
    SELECT coalesce(batch_id, 0), {day}, result_type, error_type, duplicate,
        request_id IS NULL, cost_usd IS NOT NULL,
        {sign} count(*), {sign} sum(input_tokens), {sign} sum(output_tokens),
        {sign} sum(cache_write_5m_tokens), {sign} sum(cache_write_1h_tokens),
        {sign} sum(cache_read_tokens), {sign} coalesce(sum(cost_usd), 0)
    FROM {source}
    GROUP BY coalesce(batch_id, 0), {day}, result_type, error_type, duplicate,
        request_id IS NULL, cost_usd IS NOT NULL"""


PG_DAY = "(created_at AT TIME ZONE 'UTC')::date"

PG_FUNCTIONS = [
    """
    CREATE FUNCTION batchline_count_requests() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'INSERT' THEN
        INSERT INTO request_state_counts (state, n)
        SELECT state, count(*) FROM new_rows GROUP BY state;
      ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO request_state_counts (state, n)
        SELECT state, -count(*) FROM old_rows GROUP BY state;
      ELSE
        -- Most updates move no request between states: nothing is written then.
        INSERT INTO request_state_counts (state, n)
        SELECT state, sum(n) FROM (
          SELECT state, 1 AS n FROM new_rows UNION ALL SELECT state, -1 FROM old_rows
        ) AS moved GROUP BY state HAVING sum(n) <> 0;
      END IF;
      RETURN NULL;
    END $$
    """,
    f"""
    CREATE FUNCTION batchline_total_results() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP IN ('INSERT', 'UPDATE') THEN
        {_result_rows("new_rows", "", PG_DAY)};
      END IF;
      IF TG_OP IN ('DELETE', 'UPDATE') THEN
        {_result_rows("old_rows", "-", PG_DAY)};
      END IF;
      RETURN NULL;
    END $$
    """,
]


def _pg_triggers(table: str, function: str) -> list[str]:
    tables = {
        "INSERT": "NEW TABLE AS new_rows",
        "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "DELETE": "OLD TABLE AS old_rows",
    }
    return [
        f"CREATE TRIGGER {table}_totals_{op_name.lower()} AFTER {op_name} ON {table}"
        f" REFERENCING {refs} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        for op_name, refs in tables.items()
    ]


def _sqlite_add_state(state: str, sign: str) -> str:
    return f"""
      INSERT INTO request_state_counts (state, n) SELECT {state}, 0
        WHERE NOT EXISTS (SELECT 1 FROM request_state_counts WHERE state = {state});
      UPDATE request_state_counts SET n = n {sign} 1 WHERE id =
        (SELECT min(id) FROM request_state_counts WHERE state = {state});"""


def _sqlite_add_result(row: str, sign: str) -> str:
    key = (
        f"batch_id = coalesce({row}.batch_id, 0) AND day = date({row}.created_at)"
        f" AND result_type = {row}.result_type AND error_type IS {row}.error_type"
        f" AND duplicate = {row}.duplicate AND orphan = ({row}.request_id IS NULL)"
        f" AND priced = ({row}.cost_usd IS NOT NULL)"
    )
    return f"""
      INSERT INTO result_totals ({RESULT_KEY}, {RESULT_SUMS})
        SELECT coalesce({row}.batch_id, 0), date({row}.created_at), {row}.result_type,
          {row}.error_type,
          {row}.duplicate, {row}.request_id IS NULL, {row}.cost_usd IS NOT NULL,
          0, 0, 0, 0, 0, 0, 0
        WHERE NOT EXISTS (SELECT 1 FROM result_totals WHERE {key});
      UPDATE result_totals SET
        results = results {sign} 1,
        input_tokens = input_tokens {sign} {row}.input_tokens,
        output_tokens = output_tokens {sign} {row}.output_tokens,
        cache_write_5m_tokens = cache_write_5m_tokens {sign} {row}.cache_write_5m_tokens,
        cache_write_1h_tokens = cache_write_1h_tokens {sign} {row}.cache_write_1h_tokens,
        cache_read_tokens = cache_read_tokens {sign} {row}.cache_read_tokens,
        cost_usd = cost_usd {sign} coalesce({row}.cost_usd, 0)
      WHERE id = (SELECT min(id) FROM result_totals WHERE {key});"""


SQLITE_TRIGGERS = [
    "CREATE TRIGGER requests_totals_insert AFTER INSERT ON requests BEGIN"
    + _sqlite_add_state("NEW.state", "+")
    + " END",
    "CREATE TRIGGER requests_totals_update AFTER UPDATE OF state ON requests"
    " WHEN OLD.state IS NOT NEW.state BEGIN"
    + _sqlite_add_state("OLD.state", "-")
    + _sqlite_add_state("NEW.state", "+")
    + " END",
    "CREATE TRIGGER requests_totals_delete AFTER DELETE ON requests BEGIN"
    + _sqlite_add_state("OLD.state", "-")
    + " END",
    "CREATE TRIGGER results_totals_insert AFTER INSERT ON results BEGIN"
    + _sqlite_add_result("NEW", "+")
    + " END",
    "CREATE TRIGGER results_totals_update AFTER UPDATE ON results BEGIN"
    + _sqlite_add_result("OLD", "-")
    + _sqlite_add_result("NEW", "+")
    + " END",
    "CREATE TRIGGER results_totals_delete AFTER DELETE ON results BEGIN"
    + _sqlite_add_result("OLD", "-")
    + " END",
]


def _create_tables() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "request_state_counts",
        sa.Column("id", big_id, autoincrement=True, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_state_counts")),
    )
    op.create_index("ix_request_state_counts_state", "request_state_counts", ["state"])
    op.create_table(
        "result_totals",
        sa.Column("id", big_id, autoincrement=True, nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("result_type", sa.String(length=16), nullable=False),
        sa.Column("error_type", sa.String(length=64), nullable=True),
        sa.Column("duplicate", sa.Boolean(), nullable=False),
        sa.Column("orphan", sa.Boolean(), nullable=False),
        sa.Column("priced", sa.Boolean(), nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False)
            for name in (
                "results",
                "input_tokens",
                "output_tokens",
                "cache_write_5m_tokens",
                "cache_write_1h_tokens",
                "cache_read_tokens",
            )
        ),
        sa.Column("cost_usd", sa.Numeric(precision=24, scale=8), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_result_totals")),
    )
    op.create_index("ix_result_totals_batch_id", "result_totals", ["batch_id"])
    op.create_index("ix_result_totals_day", "result_totals", ["day"])
    op.create_table(
        "snapshots",
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("intake_depth", sa.BigInteger(), nullable=True),
        sa.Column("queued", sa.BigInteger(), nullable=False),
        sa.Column("in_batch", sa.BigInteger(), nullable=False),
        sa.Column("final", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("taken_at", name=op.f("pk_snapshots")),
    )


def upgrade() -> None:
    _create_tables()
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for statement in PG_FUNCTIONS:
            op.execute(statement)
        statements = _pg_triggers("requests", "batchline_count_requests")
        statements += _pg_triggers("results", "batchline_total_results")
    else:
        statements = SQLITE_TRIGGERS
    for statement in statements:
        op.execute(statement)
    # After the triggers: their locks hold writers off until this commits, so
    # no change falls between the count and the first trigger.
    op.execute(
        "INSERT INTO request_state_counts (state, n) SELECT state, count(*) FROM requests"
        " GROUP BY state"
    )
    op.execute(_result_rows("results", "", PG_DAY if postgres else "date(created_at)"))


def downgrade() -> None:
    for table in ("requests", "results"):
        for op_name in ("insert", "update", "delete"):
            suffix = f" ON {table}" if op.get_bind().dialect.name == "postgresql" else ""
            op.execute(f"DROP TRIGGER IF EXISTS {table}_totals_{op_name}{suffix}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS batchline_count_requests()")
        op.execute("DROP FUNCTION IF EXISTS batchline_total_results()")
    op.drop_table("snapshots")
    op.drop_index("ix_result_totals_day", table_name="result_totals")
    op.drop_index("ix_result_totals_batch_id", table_name="result_totals")
    op.drop_table("result_totals")
    op.drop_index("ix_request_state_counts_state", table_name="request_state_counts")
    op.drop_table("request_state_counts")
