"""Deadlines and fallbacks as `status`, the metrics and `doctor` show them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from batchline.adapters.sql.fallback import DeadlineFigures, deadline_figures
from batchline.settings import Settings

__all__ = ["DeadlineFigures", "at_risk_before", "deadline_figures", "describe_deadlines"]


def at_risk_before(settings: Settings, now: datetime | None = None) -> datetime:
    """A deadline before this is at risk: the fallback is due for it (or overdue)."""
    return (now or datetime.now(UTC)) + timedelta(seconds=settings.sync_latency_seconds)


def describe_deadlines(figures: DeadlineFigures, fallback_usd: Decimal) -> str:
    fallbacks = figures.fallbacks
    return (
        f"at risk {figures.at_risk}  fallbacks: answered {fallbacks['done']} "
        f"(late, duplicate {figures.sync_duplicates})  waiting "
        f"{fallbacks['pending'] + fallbacks['calling']}  given up {fallbacks['failed']}  "
        f"spent ${fallback_usd:.4f} at full price"
    )
