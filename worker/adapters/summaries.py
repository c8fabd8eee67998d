"""Reads of the running totals the triggers keep (see models.summaries), their
folding, and the snapshots taken from them.

Every figure here is a SUM over a table of a few rows per key, so it costs the
same at a thousand requests as at a million, and it is exact: the triggers
write in the same transaction as the change they count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from batchline.domain.cost import Usage
from batchline.models import RequestStateCount, ResultTotal, Snapshot

FINAL_STATES = ("succeeded", "failed", "canceled", "expired")


def requests_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(RequestStateCount.state, func.sum(RequestStateCount.n)).group_by(
            RequestStateCount.state
        )
    )
    return {state: int(n) for state, n in rows if n}


def _sum(column: Any) -> Any:
    return func.coalesce(func.sum(column), 0)


@dataclass(frozen=True)
class Totals:
    """Results and what they carried, over whichever rows were asked for."""

    results: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: Decimal = Decimal(0)

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def hit_rate(self) -> float:
        """Share of prompt tokens read from the cache."""
        total = self.cache_write_tokens + self.cache_read_tokens + self.input_tokens
        return self.cache_read_tokens / total if total else 0.0


SUMS = (
    ResultTotal.results,
    ResultTotal.input_tokens,
    ResultTotal.output_tokens,
    ResultTotal.cache_write_5m_tokens,
    ResultTotal.cache_write_1h_tokens,
    ResultTotal.cache_read_tokens,
)


def _totals(row: Any) -> Totals:
    counts = [int(v) for v in row[:6]]
    return Totals(
        results=counts[0],
        input_tokens=counts[1],
        output_tokens=counts[2],
        cache_write_5m_tokens=counts[3],
        cache_write_1h_tokens=counts[4],
        cache_read_tokens=counts[5],
        cost_usd=Decimal(str(row[6])),
    )


def _sums() -> list[Any]:
    return [*(_sum(c) for c in SUMS), _sum(ResultTotal.cost_usd)]


def result_totals(session: Session, *where: Any) -> Totals:
    return _totals(session.execute(select(*_sums()).where(*where)).one())


def results_grouped(session: Session, key: Any, *where: Any) -> dict[Any, Totals]:
    rows = session.execute(select(key, *_sums()).where(*where).group_by(key).order_by(key))
    return {row[0]: _totals(row[1:]) for row in rows if row[1]}


@dataclass(frozen=True)
class Kind:
    result_type: str
    error_type: str | None
    duplicate: bool
    orphan: bool
    priced: bool


# Results with no batch (synchronous fallbacks) are totalled under batch 0.
SYNC_BATCH = 0


def by_kind(session: Session, *where: Any) -> dict[Kind, Totals]:
    """Every result's totals by kind (a few rows): one read serves several figures."""
    key = (
        ResultTotal.result_type,
        ResultTotal.error_type,
        ResultTotal.duplicate,
        ResultTotal.orphan,
        ResultTotal.priced,
    )
    rows = session.execute(select(*key, *_sums()).where(*where).group_by(*key))
    return {Kind(*row[:5]): _totals(row[5:]) for row in rows if row[5]}


def all_time_spend(session: Session) -> tuple[Decimal, int, int, Decimal]:
    """(batch spend, results, succeeded results of unknown price, synchronous
    fallback spend) over all time, from the totals."""
    kinds = by_kind(session, ResultTotal.batch_id != SYNC_BATCH)
    batch = add(list(kinds.values()))
    unknown = sum(
        t.results for k, t in kinds.items() if not k.priced and k.result_type == "succeeded"
    )
    sync = result_totals(session, ResultTotal.batch_id == SYNC_BATCH)
    return batch.cost_usd, batch.results + sync.results, unknown, sync.cost_usd


def add(totals: list[Totals]) -> Totals:
    return Totals(
        results=sum(t.results for t in totals),
        input_tokens=sum(t.input_tokens for t in totals),
        output_tokens=sum(t.output_tokens for t in totals),
        cache_write_5m_tokens=sum(t.cache_write_5m_tokens for t in totals),
        cache_write_1h_tokens=sum(t.cache_write_1h_tokens for t in totals),
        cache_read_tokens=sum(t.cache_read_tokens for t in totals),
        cost_usd=sum((t.cost_usd for t in totals), Decimal(0)),
    )


def totals_by_batch(session: Session, batch_ids: list[int]) -> dict[int, Totals]:
    found = results_grouped(session, ResultTotal.batch_id, ResultTotal.batch_id.in_(batch_ids))
    return {int(k): v for k, v in found.items()}


def errors_of_batch(session: Session, batch_id: int) -> dict[str, int]:
    """Results of a batch other than succeeded, by error type ('-' when none)."""
    found = results_grouped(
        session,
        ResultTotal.error_type,
        ResultTotal.batch_id == batch_id,
        ResultTotal.result_type != "succeeded",
    )
    return {str(kind or "-"): t.results for kind, t in found.items()}


def spent_since_day(session: Session, day: date) -> tuple[Decimal, Usage]:
    """Priced spend from the start of `day` (UTC) on, and the tokens of succeeded
    results with no price: what the daily spend cap counts."""
    since = ResultTotal.day >= day
    priced = result_totals(session, since).cost_usd
    unpriced = result_totals(
        session, since, ResultTotal.priced.is_(False), ResultTotal.result_type == "succeeded"
    )
    usage = Usage(
        unpriced.input_tokens,
        unpriced.output_tokens,
        unpriced.cache_write_5m_tokens,
        unpriced.cache_write_1h_tokens,
        unpriced.cache_read_tokens,
    )
    return priced, usage


def by_day(session: Session) -> dict[date, tuple[Totals, int]]:
    """Each UTC day's batch totals and its succeeded results of unknown price."""
    unpriced = (ResultTotal.priced.is_(False)) & (ResultTotal.result_type == "succeeded")
    rows = session.execute(
        select(
            ResultTotal.day,
            *_sums(),
            func.coalesce(func.sum(ResultTotal.results).filter(unpriced), 0),
        )
        .where(ResultTotal.batch_id != SYNC_BATCH)
        .group_by(ResultTotal.day)
        .order_by(ResultTotal.day)
    )
    return {row[0]: (_totals(row[1:-1]), int(row[-1])) for row in rows if row[1]}


def compact(session: Session) -> int:
    """Fold the difference rows into one per key (PostgreSQL; SQLite keeps one
    already). Returns how many rows were folded away. Safe beside writers: rows
    are deleted and their sums inserted in one statement, so a reader sees
    either the old rows or the new ones, and a concurrent fold deletes only
    rows still there."""
    if session.get_bind().dialect.name != "postgresql":
        return 0
    folded = 0
    for table, key, sums in (
        ("request_state_counts", "state", "n"),
        (
            "result_totals",
            "batch_id, day, result_type, error_type, duplicate, orphan, priced",
            "results, input_tokens, output_tokens, cache_write_5m_tokens,"
            " cache_write_1h_tokens, cache_read_tokens, cost_usd",
        ),
    ):
        totals = ", ".join(f"sum({c.strip()})" for c in sums.split(","))
        before = session.scalar(text(f"SELECT count(*) FROM {table}")) or 0
        session.execute(
            text(
                f"WITH gone AS (DELETE FROM {table} RETURNING {key}, {sums})"
                f" INSERT INTO {table} ({key}, {sums})"
                f" SELECT {key}, {totals} FROM gone GROUP BY {key}"
            )
        )
        after = session.scalar(text(f"SELECT count(*) FROM {table}")) or 0
        folded += int(before) - int(after)
    return folded


def take_snapshot(session: Session, now: datetime, intake_depth: int | None) -> Snapshot:
    counts = requests_by_state(session)
    snap = Snapshot(
        taken_at=now,
        intake_depth=intake_depth,
        queued=counts.get("queued", 0),
        in_batch=counts.get("in_batch", 0),
        final=sum(counts.get(s, 0) for s in FINAL_STATES),
    )
    session.merge(snap)
    return snap


def snapshots_since(session: Session, since: datetime) -> list[Snapshot]:
    return list(
        session.scalars(
            select(Snapshot).where(Snapshot.taken_at >= since).order_by(Snapshot.taken_at)
        )
    )


def drop_snapshots_before(session: Session, before: datetime) -> int:
    done = session.execute(delete(Snapshot).where(Snapshot.taken_at < before))
    return int(getattr(done, "rowcount", 0))
