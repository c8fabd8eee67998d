"""Read-side SQL for the cost ledger (`batchline.ledger`): spend totals, grouped.

Each total is a `SpendTotals` of plain numbers; the ledger turns them into money
with the price table. Duplicate results count: they were paid.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from batchline.models import Request, Result


class SpendTotals(NamedTuple):
    batch_usd: Decimal  # at batch prices; a result of unknown price adds nothing
    results: int
    unknown_cost_results: int  # succeeded results the price table could not price
    fallback_usd: Decimal  # synchronous fallbacks for deadlines, at full price


def spend_totals(session: Session, since: datetime | None = None) -> SpendTotals:
    stmt = _totals()
    if since is not None:
        stmt = stmt.where(Result.created_at >= since)
    return _row(session.execute(stmt).one())


def spend_totals_by_batch(session: Session) -> dict[int, SpendTotals]:
    rows = session.execute(
        _totals(Result.batch_id).where(Result.batch_id.is_not(None)).group_by(Result.batch_id)
    )
    return {int(r[0]): _row(r[1:]) for r in rows}


def spend_totals_by_tag(session: Session, tag: str) -> dict[str | None, SpendTotals]:
    """Totals grouped by the value of one tag (None: requests without that tag)."""
    value = Request.tags[tag].as_string()
    rows = session.execute(
        _totals(value).join(Request, Request.id == Result.request_id).group_by(value)
    )
    return {r[0]: _row(r[1:]) for r in rows}


def _totals(*keys: Any) -> Select[Any]:
    return select(
        *keys,
        func.coalesce(func.sum(Result.cost_usd).filter(Result.via == "batch"), 0),
        func.count(),
        func.count().filter(Result.cost_usd.is_(None), Result.result_type == "succeeded"),
        func.coalesce(func.sum(Result.cost_usd).filter(Result.via == "sync"), 0),
    )


def _row(row: Iterable[Any]) -> SpendTotals:
    usd, results, unknown, fallback = row
    return SpendTotals(Decimal(str(usd)), int(results), int(unknown), Decimal(str(fallback)))
