"""SQL behind the Prometheus scrape that is not shared with status: stage
durations and batch errors (batches: one row per batch, few), and total cost
(from the running totals)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Float, cast, func, select
from sqlalchemy.orm import Session

from batchline.adapters import summaries
from batchline.models import Batch, ResultTotal

STAGES = {
    # name: (start column, end column)
    "submit": (Batch.submit_started_at, Batch.submitted_at),
    "remote": (Batch.remote_created_at, Batch.remote_ended_at),
    "ingest": (Batch.remote_ended_at, Batch.ingested_at),
}


def stage_seconds(session: Session) -> dict[str, float]:
    """Mean seconds per batch in each stage, for the stages some batch has done."""
    found = {}
    for stage, (start, end) in STAGES.items():
        seconds = _mean_seconds_between(session, start, end)
        if seconds is not None:
            found[stage] = seconds
    return found


def _mean_seconds_between(session: Session, start: Any, end: Any) -> float | None:
    diff: Any
    if session.get_bind().dialect.name == "postgresql":
        diff = func.extract("epoch", end - start)
    else:
        diff = (func.julianday(end) - func.julianday(start)) * 86400.0
    value = session.scalar(
        select(func.avg(cast(diff, Float))).where(start.is_not(None), end.is_not(None))
    )
    return None if value is None else float(value)


def batches_with_errors(session: Session) -> int:
    return int(session.scalar(select(func.count()).where(Batch.error.is_not(None))) or 0)


def total_cost(session: Session) -> Decimal:
    """Spend at batch prices: synchronous fallbacks (batch 0) are counted apart."""
    return summaries.result_totals(session, ResultTotal.batch_id != summaries.SYNC_BATCH).cost_usd
