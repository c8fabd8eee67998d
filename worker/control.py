"""Operator actions from Python: cancel a batch, cancel a request not yet sent.

Both only record the wish in SQL; the beat sweep carries it out (a batch's
cancel is sent by its next poll), so they are safe to call from anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from batchline.adapters.sql import cancel as cancel_sql
from batchline.database import session_scope
from batchline.settings import Settings


def cancel_batch(batch_id: int, settings: Settings | None = None) -> bool:
    """Ask for a batch to be canceled; False if it is already past cancelling."""
    return _in_transaction(
        settings, lambda s, now: cancel_sql.request_batch_cancel(s, batch_id, now)
    )


def cancel_request(request_id: str, settings: Settings | None = None) -> bool:
    """Cancel a request still queued (not yet in a batch); False otherwise."""
    return _in_transaction(
        settings, lambda s, now: cancel_sql.cancel_queued_request(s, request_id, now)
    )


def _in_transaction(settings: Settings | None, action: Callable[[Session, datetime], bool]) -> bool:
    with session_scope(settings or Settings.from_env(), write=True) as session:
        return action(session, datetime.now(UTC))
