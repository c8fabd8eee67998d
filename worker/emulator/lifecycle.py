"""A batch's life as a function of time: when it ends, why, and how it looks.

Pure functions over a `BatchRow` and the emulated "now". A batch ends at the
first of: its natural end (created + processing time), its expiry (created +
24 h), or shortly after a cancel. At the end, requests done by the cutoff keep
their planned outcome; the rest are `canceled` (after a cancel) or `expired`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .clock import rfc3339
from .store import BatchRow

EXPIRY_SECONDS = 24 * 3600.0
ARCHIVE_SECONDS = 29 * 24 * 3600.0
# How long a batch stays `canceling` before it ends (emulated seconds).
CANCEL_SECONDS = 1.0


@dataclass(frozen=True)
class Ending:
    at: float
    reason: str  # "completed" | "canceled" | "expired"
    cutoff: float  # requests done after this did not finish


def ending(row: BatchRow) -> Ending:
    natural = row.natural_end_at if row.natural_end_at is not None else math.inf
    if row.cancel_initiated_at is not None:
        at = min(row.cancel_initiated_at + CANCEL_SECONDS, natural, row.expires_at)
        return Ending(at, "canceled", row.cancel_initiated_at)
    if natural <= row.expires_at:
        return Ending(natural, "completed", math.inf)
    return Ending(row.expires_at, "expired", row.expires_at)


def is_due(row: BatchRow, now: float) -> bool:
    """Whether the batch has ended by `now` but its end is not recorded yet."""
    return row.ended_at is None and ending(row).at <= now


def cutoff_of(row: BatchRow) -> tuple[float, str]:
    """For an ended batch: the cutoff, and what a request not done by it became."""
    end = ending(row)
    return end.cutoff, "canceled" if end.reason == "canceled" else "expired"


def status(row: BatchRow) -> str:
    if row.ended_at is not None:
        return "ended"
    return "canceling" if row.cancel_initiated_at is not None else "in_progress"


def archived_at(row: BatchRow, now: float) -> float | None:
    at = row.created_at + ARCHIVE_SECONDS
    return at if row.ended_at is not None and now >= at else None


def render(row: BatchRow, *, now: float, base_url: str) -> dict[str, object]:
    """The `MessageBatch` object."""
    ended = row.ended_at is not None
    archived = archived_at(row, now)
    counts = {
        "processing": 0 if ended else row.request_count,
        "succeeded": row.succeeded,
        "errored": row.errored,
        "canceled": row.canceled,
        "expired": row.expired,
    }
    return {
        "id": row.id,
        "type": "message_batch",
        "processing_status": status(row),
        "request_counts": counts,
        "created_at": rfc3339(row.created_at),
        "expires_at": rfc3339(row.expires_at),
        "ended_at": rfc3339(row.ended_at) if row.ended_at is not None else None,
        "cancel_initiated_at": _stamp(row.cancel_initiated_at),
        "archived_at": _stamp(archived),
        "results_url": f"{base_url}/v1/messages/batches/{row.id}/results" if ended else None,
    }


def render_record(row: BatchRow) -> dict[str, object]:
    """The emulator's own record of a batch (admin endpoint), deleted ones included."""
    return {
        "id": row.id,
        "request_count": row.request_count,
        "processing_status": status(row),
        "end_reason": row.end_reason,
        "created_at": rfc3339(row.created_at),
        "ended_at": _stamp(row.ended_at),
        "cancel_initiated_at": _stamp(row.cancel_initiated_at),
        "deleted": row.deleted_at is not None,
        "response_lost": row.response_lost,
        "request_counts": {
            "succeeded": row.succeeded,
            "errored": row.errored,
            "canceled": row.canceled,
            "expired": row.expired,
        },
    }


def _stamp(epoch: float | None) -> str | None:
    return rfc3339(epoch) if epoch is not None else None
