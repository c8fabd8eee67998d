"""SQL of cancellations asked for by a person (CLI, dashboard, HTTP)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    update,
)
from sqlalchemy.orm import Session

from batchline.adapters.sql.rows import changed, guarded_move
from batchline.domain.states import BatchState, RequestMoves, batch_states_leading_to
from batchline.models import Batch, Request


def request_batch_cancel(session: Session, batch_id: int, now: datetime) -> bool:
    result = session.execute(
        update(Batch)
        .where(
            Batch.id == batch_id,
            # Not a move: any batch that may yet end remotely can be asked to cancel.
            Batch.state.in_(sorted(batch_states_leading_to(BatchState.ENDED))),
        )
        .values(cancel_requested=True, next_poll_at=now, updated_at=now)
    )
    return changed(result) == 1


def cancel_queued_request(session: Session, request_id: str, now: datetime) -> bool:
    moved = guarded_move(
        session,
        RequestMoves.CANCELED_WHILE_QUEUED,
        Request.id == request_id,
        finished_at=now,
        updated_at=now,
        last_error="canceled before submission",
    )
    return moved == 1
