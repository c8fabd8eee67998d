"""Operator actions from Python: cancel a batch, cancel a request not yet sent.

Both only record the wish in SQL; the beat sweep carries it out (a batch's
cancel is sent by its next poll), so they are safe to call from anywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime

from worker.adapters import store
from worker.database import make_engine, make_session_factory
from worker.settings import Settings


def cancel_batch(batch_id: int, settings: Settings | None = None) -> bool:
    """Ask for a batch to be canceled; False if it is already past cancelling."""
    return _in_transaction(settings, lambda s, now: store.request_batch_cancel(s, batch_id, now))


def cancel_request(request_id: str, settings: Settings | None = None) -> bool:
    """Cancel a request still queued (not yet in a batch); False otherwise."""
    return _in_transaction(settings, lambda s, now: store.cancel_queued_request(s, request_id, now))


def _in_transaction(settings: Settings | None, action: object) -> bool:
    config = settings or Settings.from_env()
    engine = make_engine(config.database_url)
    try:
        with make_session_factory(engine).begin() as session:
            return bool(action(session, datetime.now(UTC)))  # type: ignore[operator]
    finally:
        engine.dispose()
