"""Callbacks: tell the application, by a Celery task of its own, that a result is final.

An outbox in SQL: a request with `on_result` that is final and not yet
notified is sent once, from inside the transaction that locks its row and
marks it sent. Two dispatchers never send the same row (the second skips the
locked one), and re-running ingestion sends nothing, because a request
becomes final only once. A worker dying between the send and the commit
leaves the row unmarked, so it is sent again: receivers should treat the
request id as the deduplication key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from batchline.adapters import callback_queries
from batchline.services.context import Pipeline

log = logging.getLogger("batchline.callbacks")

# (task name, request id) -> None; sends the application's Celery task.
Send = Callable[[str, str], None]


def dispatch_callbacks(pipeline: Pipeline, send: Send, limit: int = 500) -> int:
    """Send due callbacks, up to `limit`; returns how many were sent."""
    with pipeline.sessions.begin() as session:
        due = callback_queries.lock_due_callbacks(session, limit)
        for request_id, task_name in due:
            send(task_name, request_id)
        if due:
            callback_queries.mark_notified(session, [r[0] for r in due], pipeline.clock())
    if due:
        log.info("sent %d result callbacks", len(due), extra={"count": len(due)})
    return len(due)
