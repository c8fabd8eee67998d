"""SQL of polling: leasing due batches and recording what the API says of them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    select,
    update,
)
from sqlalchemy.orm import Session

from batchline.adapters.batch_api import RemoteBatch
from batchline.adapters.sql.rows import move_batch
from batchline.adapters.sql.submit import remote_fields
from batchline.domain.states import BatchState
from batchline.models import Batch


def lease_due_polls(session: Session, now: datetime, lease: timedelta, limit: int) -> list[int]:
    """Batches due a poll, each pushed back by `lease` so the next sweep skips them."""
    due = list(
        session.scalars(
            select(Batch.id)
            .where(Batch.state == BatchState.SUBMITTED, Batch.next_poll_at <= now)
            .order_by(Batch.next_poll_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if due:
        session.execute(update(Batch).where(Batch.id.in_(due)).values(next_poll_at=now + lease))
    return due


def record_poll(
    session: Session, batch_id: int, remote: RemoteBatch, now: datetime, next_poll: datetime
) -> bool:
    """Store what the poll saw; SUBMITTED -> ENDED once the remote batch ended."""
    values: dict[str, Any] = {**remote_fields(remote), "updated_at": now}
    if remote.ended:
        values["state"] = BatchState.ENDED
    else:
        values["next_poll_at"] = next_poll
    return move_batch(session, batch_id, [BatchState.SUBMITTED], **values)


def mark_gone(session: Session, batch_id: int, error: str, now: datetime) -> bool:
    """SUBMITTED -> ENDED for a batch the API no longer knows; ingestion settles the rest."""
    return move_batch(
        session,
        batch_id,
        [BatchState.SUBMITTED],
        state=BatchState.ENDED,
        error=error,
        processing_status="ended",
        updated_at=now,
    )
