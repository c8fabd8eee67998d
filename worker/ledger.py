"""The cost ledger: what was spent at batch prices, and what it saved.

Every result row carries its tokens and its cost (NULL when the model is not
in the price table: unknown, not free). Duplicate results count: they were
paid. The saving is against the synchronous price of the same tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from batchline.domain.cost import Estimate, PriceTable
from batchline.domain.validation import encode_params
from batchline.models import Request, Result
from batchline.prices import load_prices


@dataclass(frozen=True)
class Spend:
    batch_usd: Decimal
    synchronous_usd: Decimal
    results: int
    unknown_cost_results: int

    @property
    def saving_usd(self) -> Decimal:
        return self.synchronous_usd - self.batch_usd


def _spend_columns() -> list[ColumnElement[Any]]:
    return [
        func.coalesce(func.sum(Result.cost_usd), 0),
        func.count(),
        func.count().filter(Result.cost_usd.is_(None), Result.result_type == "succeeded"),
    ]


def _spend(row: Any, table: PriceTable) -> Spend:
    batch = Decimal(str(row[0]))
    return Spend(batch, batch / table.batch_discount, int(row[1]), int(row[2]))


def spend(
    session: Session, since: datetime | None = None, table: PriceTable | None = None
) -> Spend:
    prices = table or load_prices()
    stmt = select(*_spend_columns())
    if since is not None:
        stmt = stmt.where(Result.created_at >= since)
    return _spend(session.execute(stmt).one(), prices)


def spend_by_batch(session: Session, table: PriceTable | None = None) -> dict[int, Spend]:
    prices = table or load_prices()
    rows = session.execute(select(Result.batch_id, *_spend_columns()).group_by(Result.batch_id))
    return {int(r[0]): _spend(r[1:], prices) for r in rows}


def spend_by_day(session: Session, table: PriceTable | None = None) -> dict[str, Spend]:
    prices = table or load_prices()
    day = func.date(Result.created_at)
    rows = session.execute(select(day, *_spend_columns()).group_by(day).order_by(day))
    return {str(r[0]): _spend(r[1:], prices) for r in rows}


def spend_by_tag(
    session: Session, tag: str, table: PriceTable | None = None
) -> dict[str | None, Spend]:
    """Spend grouped by the value of one tag (None: requests without that tag)."""
    prices = table or load_prices()
    value = Request.tags[tag].as_string()
    rows = session.execute(
        select(value, *_spend_columns())
        .join(Request, Request.id == Result.request_id)
        .group_by(value)
    )
    return {r[0]: _spend(r[1:], prices) for r in rows}


def estimate(requests: Iterable[Mapping[str, Any]], table: PriceTable | None = None) -> Estimate:
    """Before spending: request count, estimated input tokens, worst-case USD at batch
    prices (every request writing its full max_tokens). Invalid requests raise."""
    prices = table or load_prices()
    result = Estimate()
    for params in requests:
        result.add(prices, params, len(encode_params(params)))
    return result


def spend_cap_reached(session: Session, cap_usd: float, now: datetime) -> str | None:
    """Why submission must wait for tomorrow (or a higher cap), or None."""
    if cap_usd <= 0:
        return None
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    spent = spend(session, since=midnight).batch_usd
    if spent >= Decimal(str(cap_usd)):
        return f"daily spend cap reached: ${spent:.4f} of ${cap_usd:.2f} today (UTC)"
    return None
