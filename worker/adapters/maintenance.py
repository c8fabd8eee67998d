"""Operator writes: re-queue failed requests, purge old ones."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from batchline.adapters.sql.rows import guarded_move
from batchline.domain.retry import RETRIABLE_ERRORS
from batchline.domain.states import TERMINAL_BATCH_STATES, RequestMoves, RequestState
from batchline.models import Batch, Request, RequestBody, Result

REQUEUED_BY_HAND = (RequestMoves.FAILED_REQUEUED, RequestMoves.EXPIRED_REQUEUED)
RETRIABLE_BY_HAND = tuple(move.source for move in REQUEUED_BY_HAND)


def _worth_retrying() -> ColumnElement[bool]:
    # Expired, or an error another attempt may cure; not invalid_request_error & co.
    return or_(Result.result_type == "expired", Result.error_type.in_(sorted(RETRIABLE_ERRORS)))


def count_final_failures(session: Session, batch_id: int) -> int:
    """Failed requests of this batch whose error will not change by retrying."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(Request)
            .where(
                Request.state.in_(RETRIABLE_BY_HAND),
                Request.id.in_(
                    select(Result.request_id).where(
                        Result.batch_id == batch_id,
                        Result.duplicate.is_(False),
                        ~_worth_retrying(),
                    )
                ),
            )
        )
        or 0
    )


def requeue_failed(
    session: Session, batch_id: int, now: datetime, *, include_final: bool = False
) -> int:
    """Failed or expired requests whose last result came from this batch, queued again
    with a fresh retry budget; those that failed for a final reason only with
    `include_final`. Guarded: a request that moved meanwhile is left alone."""
    from_batch = select(Result.request_id).where(
        Result.batch_id == batch_id, Result.duplicate.is_(False)
    )
    if not include_final:
        from_batch = from_batch.where(_worth_retrying())
    return sum(
        guarded_move(
            session,
            move,
            Request.id.in_(from_batch),
            synchronize=False,
            charged_attempts=0,
            last_error=None,
            finished_at=None,
            updated_at=now,
        )
        for move in REQUEUED_BY_HAND
    )


def count_purgeable(session: Session, finished_before: datetime) -> int:
    """How many final requests purge_finished would delete."""
    final = [s.value for s in RequestState if s not in (RequestState.QUEUED, RequestState.IN_BATCH)]
    return int(
        session.scalar(
            select(func.count())
            .select_from(Request)
            .where(Request.state.in_(final), Request.finished_at < finished_before)
        )
        or 0
    )


def purge_finished(session: Session, finished_before: datetime) -> tuple[int, int]:
    """Delete final requests (their bodies and results go with them) and finished,
    emptied batches."""
    final = [s.value for s in RequestState if s not in (RequestState.QUEUED, RequestState.IN_BATCH)]
    purged = select(Request.id).where(
        Request.state.in_(final), Request.finished_at < finished_before
    )
    # No foreign key cascades (they cost ingestion a check per row): results go first, by hand.
    session.execute(
        delete(Result)
        .where(Result.request_id.in_(purged))
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(RequestBody)
        .where(RequestBody.request_id.in_(purged))
        .execution_options(synchronize_session=False)
    )
    requests = session.execute(
        delete(Request)
        .where(Request.state.in_(final), Request.finished_at < finished_before)
        .execution_options(synchronize_session=False)
    )
    still_used = select(Result.batch_id).distinct()
    batches = session.execute(
        delete(Batch)
        .where(
            Batch.state.in_([s.value for s in TERMINAL_BATCH_STATES]),
            Batch.updated_at < finished_before,
            Batch.id.not_in(still_used),
            Batch.id.not_in(select(Request.batch_id).where(Request.batch_id.is_not(None))),
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(requests, "rowcount", 0)), int(getattr(batches, "rowcount", 0))
