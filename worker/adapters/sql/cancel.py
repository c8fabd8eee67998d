"""SQL of cancellations asked for by a person (CLI, dashboard, HTTP)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    update,
)
from sqlalchemy.orm import Session

from batchline.adapters.sql.rows import changed
from batchline.domain.states import BatchState, RequestState
from batchline.models import Batch, Request


def request_batch_cancel(session: Session, batch_id: int, now: datetime) -> bool:
    result = session.execute(
        update(Batch)
        .where(
            Batch.id == batch_id,
            Batch.state.in_(
                [
                    BatchState.PREPARED,
                    BatchState.SUBMITTING,
                    BatchState.SUBMITTED,
                    BatchState.UNKNOWN,
                ]
            ),
        )
        .values(cancel_requested=True, next_poll_at=now, updated_at=now)
    )
    return changed(result) == 1


def cancel_queued_request(session: Session, request_id: str, now: datetime) -> bool:
    result = session.execute(
        update(Request)
        .where(Request.id == request_id, Request.state == RequestState.QUEUED)
        .values(
            state=RequestState.CANCELED,
            finished_at=now,
            updated_at=now,
            last_error="canceled before submission",
        )
    )
    return changed(result) == 1
