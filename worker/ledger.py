"""The cost ledger: what was spent at batch prices, and what it saved.

Every result row carries its tokens and its cost (NULL when the model is not
in the price table: unknown, not free). Duplicate results count: they were
paid. The saving is against the synchronous price of the same tokens.

Results obtained through the deadline fallback (`via = 'sync'`) cost the full
price: they are `fallback_usd`, beside the batch spend and its saving, never in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from batchline.adapters import ledger_queries, spending, summaries
from batchline.adapters.ledger_queries import SpendTotals
from batchline.domain.cost import MILLION, Estimate, PriceTable
from batchline.domain.validation import encode_params
from batchline.prices import load_prices


@dataclass(frozen=True)
class Spend:
    batch_usd: Decimal
    synchronous_usd: Decimal
    results: int
    unknown_cost_results: int
    # Spent on synchronous fallbacks for deadlines, at full price.
    fallback_usd: Decimal = Decimal(0)

    @property
    def saving_usd(self) -> Decimal:
        return self.synchronous_usd - self.batch_usd


def _spend(totals: SpendTotals, table: PriceTable) -> Spend:
    return Spend(
        totals.batch_usd,
        totals.batch_usd / table.batch_discount,
        totals.results,
        totals.unknown_cost_results,
        totals.fallback_usd,
    )


def spend(
    session: Session, since: datetime | None = None, table: PriceTable | None = None
) -> Spend:
    prices = table or load_prices()
    if since is None:
        # All time: from the running totals, not a scan of every result.
        batch, results, unknown, fallback = summaries.all_time_spend(session)
        return Spend(batch, batch / prices.batch_discount, results, unknown, fallback)
    return _spend(ledger_queries.spend_totals(session, since), prices)


def spend_by_batch(session: Session, table: PriceTable | None = None) -> dict[int, Spend]:
    prices = table or load_prices()
    totals = ledger_queries.spend_totals_by_batch(session)
    return {batch: _spend(t, prices) for batch, t in totals.items()}


def spend_by_day(session: Session, table: PriceTable | None = None) -> dict[str, Spend]:
    """Per UTC day, from the running totals."""
    prices = table or load_prices()
    return {
        str(day): Spend(t.cost_usd, t.cost_usd / prices.batch_discount, t.results, unknown)
        for day, (t, unknown) in summaries.by_day(session).items()
    }


def spend_by_tag(
    session: Session, tag: str, table: PriceTable | None = None
) -> dict[str | None, Spend]:
    """Spend grouped by the value of one tag (None: requests without that tag)."""
    prices = table or load_prices()
    totals = ledger_queries.spend_totals_by_tag(session, tag)
    return {value: _spend(t, prices) for value, t in totals.items()}


def estimate(
    requests: Iterable[Mapping[str, Any]],
    table: PriceTable | None = None,
    *,
    betas: Sequence[str] | None = None,
) -> Estimate:
    """Before spending: request count, an upper bound on input tokens, and the worst
    case in USD at batch prices (as reserved under a spend cap: every prompt token at
    its dearest rate, every request writing its full max_tokens). Invalid requests raise;
    with `betas`, beta parameters are valid (as for `enqueue`)."""
    prices = table or load_prices()
    result = Estimate()
    for params in requests:
        result.add(prices, params, len(encode_params(params, betas=betas)))
    return result


@dataclass(frozen=True)
class CapUse:
    """Today's standing against the daily spend cap, USD at batch prices."""

    cap: Decimal
    # Results ingested today; a result with no price counts at the dearest listed rates.
    spent: Decimal
    # Worst cases of batches that may still be billed (see adapters.spending.RESERVING).
    reserved: Decimal

    @property
    def room(self) -> Decimal:
        return self.cap - self.spent - self.reserved

    def describe(self) -> str:
        return (
            f"${self.spent:.4f} spent + ${self.reserved:.4f} reserved"
            f" of ${self.cap:.2f} today (UTC)"
        )


def _midnight(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def cap_use(
    session: Session, cap_usd: float, now: datetime, table: PriceTable | None = None
) -> CapUse:
    prices = table or load_prices()
    priced, unpriced = summaries.spent_since_day(session, _midnight(now).date())
    # Never $0: a result the table cannot price counts as if billed at its dearest model.
    in_rate, out_rate = prices.highest_rates
    weighted = (
        unpriced.input_tokens
        + unpriced.cache_write_5m_tokens * prices.write_5m
        + unpriced.cache_write_1h_tokens * prices.write_1h
        + unpriced.cache_read_tokens * prices.read
    )
    guessed = (weighted * in_rate + unpriced.output_tokens * out_rate) / MILLION
    spent = priced + guessed * prices.batch_discount
    return CapUse(Decimal(str(cap_usd)), spent, spending.reserved(session))


def unpriced_models(
    session: Session, table: PriceTable | None = None, queued_only: bool = False
) -> list[str]:
    """Models of not-yet-sent requests that the price table cannot price."""
    prices = table or load_prices()
    models = spending.pending_models(session, queued_only)
    return sorted(m for m in models if prices.price_of(m) is None)


def spend_cap_reached(
    session: Session, cap_usd: float, now: datetime, table: PriceTable | None = None
) -> str | None:
    """What the daily spend cap holds back and why (for status and doctor), or None."""
    if cap_usd <= 0:
        return None
    prices = table or load_prices()
    use = cap_use(session, cap_usd, now, prices)
    reasons = []
    if use.room <= 0:
        reasons.append(f"daily spend cap reached: {use.describe()}")
    else:
        count, smallest = spending.waiting_batches(session, use.room)
        if count:
            reasons.append(
                f"{count} batch(es) wait for room under the daily spend cap: {use.describe()},"
                f" the smallest needs ${smallest:.4f}"
            )
    held = unpriced_models(session, prices)
    if held:
        reasons.append(
            f"requests for {', '.join(held)} are held: no price under the spend cap"
            " (add the model to BATCHLINE_PRICES_FILE, or a [fallback] price)"
        )
    return "; ".join(reasons) or None


def batch_worst_case(
    conn: Connection, batch_id: int, table: PriceTable | None = None
) -> Decimal | str:
    """The most a batch can cost at batch prices, or why it cannot be bounded."""
    prices = table or load_prices()
    total, unknown = Decimal(0), set()
    for params_text, size in spending.batch_params(conn, batch_id):
        params = orjson.loads(params_text)
        cost = prices.worst_case(params, size)
        if cost is None:
            unknown.add(str(params.get("model")))
        else:
            total += cost
    if unknown:
        return (
            f"batch {batch_id} is held: {', '.join(sorted(unknown))} has no price under the"
            " spend cap (add it to BATCHLINE_PRICES_FILE, or a [fallback] price)"
        )
    return total


def reserve(
    session: Session,
    batch_id: int,
    worst: Decimal | str,
    cap_usd: float,
    now: datetime,
    table: PriceTable | None = None,
) -> str | None:
    """Reserve a batch's worst case against today's cap; None if reserved, else why it waits.

    The caller moves the batch to SUBMITTING in the same transaction: the
    reservation is that state plus `worst_case_usd`, and the cap's lock is held
    until the commit."""
    spending.lock_cap(session, now)
    if isinstance(worst, str):
        return worst
    # Kept even when the batch waits: the next try need not read its bodies again.
    spending.set_worst_case(session, batch_id, worst)
    use = cap_use(session, cap_usd, now, table)
    if worst > use.room:
        return (
            f"batch {batch_id} waits for the daily spend cap: its worst case ${worst:.4f}"
            f" does not fit ({use.describe()})"
        )
    return None
