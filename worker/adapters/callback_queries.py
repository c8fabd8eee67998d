"""SQL for the callback outbox (`services.callbacks`): due rows, locked; then marked sent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from batchline.domain.states import TERMINAL_REQUEST_STATES
from batchline.models import Request


def lock_due_callbacks(session: Session, limit: int) -> list[tuple[str, str]]:
    """(request id, task name) of final requests whose callback is not yet sent, oldest
    first, locked until the session's transaction ends."""
    finals = [s.value for s in TERMINAL_REQUEST_STATES]
    rows = session.execute(
        select(Request.id, Request.on_result)
        .where(
            Request.on_result.is_not(None),
            Request.notified_at.is_(None),
            Request.state.in_(finals),
        )
        .order_by(Request.finished_at)
        .limit(limit)
        # A second dispatcher skips these rows instead of sending them again.
        .with_for_update(skip_locked=True)
    ).all()
    return [(str(request_id), str(task_name)) for request_id, task_name in rows]


def mark_notified(session: Session, request_ids: Sequence[str], now: datetime) -> None:
    session.execute(update(Request).where(Request.id.in_(request_ids)).values(notified_at=now))
