"""Running totals kept by database triggers, so status, metrics and the dashboard
never count a million rows to show a figure.

The triggers (created by migration e3c5a7d9b1f2) add one row of differences per
key for each statement that changes `requests` or `results` (PostgreSQL: a
statement trigger over its transition tables; SQLite: a row trigger adding to
the key's one row). Differences are appended, never updated in place on
PostgreSQL, so concurrent writers never wait on a shared counter row; a figure
is the SUM over its key, and `adapters.summaries.compact` folds the rows.
`Snapshot` is a point in time of those figures, for charts over time.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, Date, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from batchline.models.base import Base, UtcDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")


class RequestStateCount(Base):
    """Requests by state: SUM(n) per state is the number of requests in it."""

    __tablename__ = "request_state_counts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    state: Mapped[str] = mapped_column(String(16))
    n: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_request_state_counts_state", "state"),)


class ResultTotal(Base):
    """Results and their tokens and cost, per batch, UTC day and kind of result."""

    __tablename__ = "result_totals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # 0: no batch (a synchronous fallback for a deadline); batch ids start at 1.
    batch_id: Mapped[int] = mapped_column(BigInteger)
    day: Mapped[date] = mapped_column(Date)
    result_type: Mapped[str] = mapped_column(String(16))
    error_type: Mapped[str | None] = mapped_column(String(64))
    duplicate: Mapped[bool] = mapped_column(Boolean)
    # request_id IS NULL: a custom_id naming no request batchline knows.
    orphan: Mapped[bool] = mapped_column(Boolean)
    # cost_usd IS NOT NULL: the model was in the price table.
    priced: Mapped[bool] = mapped_column(Boolean)
    results: Mapped[int] = mapped_column(BigInteger)
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_write_5m_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_write_1h_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(24, 8))

    __table_args__ = (
        Index("ix_result_totals_batch_id", "batch_id"),
        Index("ix_result_totals_day", "day"),
    )


class Snapshot(Base):
    """The queue and the settled total at one moment (taken by beat)."""

    __tablename__ = "snapshots"

    taken_at: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    # Entries in the Redis intake stream (NULL: Redis did not answer).
    intake_depth: Mapped[int | None] = mapped_column(BigInteger)
    queued: Mapped[int] = mapped_column(BigInteger)
    in_batch: Mapped[int] = mapped_column(BigInteger)
    # Requests in a final state, ever: throughput is its difference over time.
    final: Mapped[int] = mapped_column(BigInteger)
