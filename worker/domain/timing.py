"""Time as the API tells it: its `Date` header, and windows in its clock.

The reconciler looks for batches by their `created_at`, which the API stamps
with its own clock. A window computed from this machine's clock alone misses
them when the clocks disagree, so windows are moved into the API's time by the
offset its `Date` header shows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP `Date` header as an aware UTC time; None when absent or unreadable.

    RFC 5322 lets a zone be `-0000` ("UTC, local zone unknown"), which
    `parsedate_to_datetime` returns as a naive time: it is UTC all the same.
    """
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def api_offset(local_now: datetime, api_now: datetime | None) -> timedelta:
    """How far the API's clock is ahead of this machine's (negative when behind)."""
    if api_now is None:
        return timedelta()
    return api_now - local_now


def to_api_time(local: datetime, offset: timedelta) -> datetime:
    return local + offset
