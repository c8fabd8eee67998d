"""SQL of submission: claiming an intent, streaming its body, recording the create's outcome."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    or_,
    select,
)
from sqlalchemy.orm import Session

from batchline.adapters.batch_api import RemoteBatch
from batchline.adapters.sql.rows import guarded_move, move_batch
from batchline.domain.batch_body import BodyRow, encode_body
from batchline.domain.states import BatchMoves, BatchState, Move, RequestMoves, RequestState
from batchline.models import Batch, Request, RequestBody


def batches_ready_to_submit(
    session: Session, now: datetime, limit: int = 100, max_requests: int | None = None
) -> list[int]:
    """Prepared batches not backing off, oldest first; with `max_requests`, only
    those of at most that many requests."""
    stmt = (
        select(Batch.id)
        .where(
            Batch.state == BatchState.PREPARED,
            or_(Batch.next_submit_at.is_(None), Batch.next_submit_at <= now),
        )
        .order_by(Batch.id)
        .limit(limit)
    )
    if max_requests is not None:
        stmt = stmt.where(Batch.request_count <= max_requests)
    return list(session.scalars(stmt))


def begin_submission(session: Session, batch_id: int, now: datetime) -> bool:
    """PREPARED -> SUBMITTING, committed before create is called (the intent)."""
    # Guarded: of two workers handed the same batch, exactly one calls create.
    moved = guarded_move(
        session,
        BatchMoves.BEGIN_SUBMIT,
        Batch.id == batch_id,
        or_(Batch.next_submit_at.is_(None), Batch.next_submit_at <= now),
        submit_started_at=now,
        submit_tries=Batch.submit_tries + 1,
        updated_at=now,
    )
    return moved == 1


def batch_betas(conn: Connection | Session, batch_id: int) -> list[str]:
    """The anthropic-beta names a batch is created with (its requests all share them)."""
    stmt = select(Request.betas).where(Request.batch_id == batch_id).limit(1)
    joined = conn.execute(stmt).scalar()
    return joined.split(",") if joined else []


def iter_batch_body(
    conn: Connection, batch_id: int, deployment: str = "", fetch: int = 1_000
) -> Iterator[bytes]:
    """The create body for a batch, streamed from SQL a slice at a time."""
    stmt = (
        select(Request.id, Request.attempts, RequestBody.params, Request.cache_ttl_1h)
        .join(RequestBody, RequestBody.request_id == Request.id)
        .where(Request.batch_id == batch_id, Request.state == RequestState.IN_BATCH)
        .order_by(Request.id)
        .execution_options(yield_per=fetch)
    )
    slices = ([BodyRow(*row) for row in rows] for rows in conn.execute(stmt).partitions())
    yield from encode_body(slices, deployment)


def remote_fields(remote: RemoteBatch) -> dict[str, Any]:
    return {
        "processing_status": remote.processing_status,
        "count_processing": remote.processing,
        "count_succeeded": remote.succeeded,
        "count_errored": remote.errored,
        "count_canceled": remote.canceled,
        "count_expired": remote.expired,
        "remote_created_at": remote.created_at,
        "remote_expires_at": remote.expires_at,
        "remote_ended_at": remote.ended_at,
        "cancel_initiated_at": remote.cancel_initiated_at,
        "archived_at": remote.archived_at,
    }


def record_submission(
    session: Session, batch_id: int, remote: RemoteBatch, now: datetime, next_poll: datetime
) -> bool:
    return move_batch(
        session,
        batch_id,
        BatchMoves.CREATE_ACCEPTED,
        remote_id=remote.id,
        submitted_at=now,
        next_poll_at=next_poll,
        updated_at=now,
        error=None,
        **remote_fields(remote),
    )


def record_create_not_accepted(
    session: Session, batch_id: int, error: str, retry_at: datetime, now: datetime
) -> bool:
    return move_batch(
        session,
        batch_id,
        BatchMoves.CREATE_NOT_ACCEPTED,
        next_submit_at=retry_at,
        error=error,
        updated_at=now,
    )


def record_outcome_unknown(session: Session, batch_id: int, error: str, now: datetime) -> bool:
    return move_batch(
        session,
        batch_id,
        BatchMoves.CREATE_OUTCOME_LOST,
        error=error,
        updated_at=now,
    )


def refuse_batch(session: Session, batch_id: int, error: str, now: datetime) -> bool:
    """The API will never take this batch: its requests fail with the reason."""
    if not move_batch(
        session,
        batch_id,
        BatchMoves.CREATE_REFUSED,
        error=error,
        updated_at=now,
    ):
        return False
    guarded_move(
        session,
        RequestMoves.FAILED,
        Request.batch_id == batch_id,
        batch_id=None,
        charged_attempts=Request.charged_attempts + 1,
        last_error=f"batch refused: {error}",
        finished_at=now,
        updated_at=now,
    )
    return True


def release_batch(
    session: Session, batch_id: int, move: Move[BatchState], reason: str, now: datetime
) -> bool:
    """The batch was never created remotely (`move` says from which state it is
    released): its requests go back to the queue."""
    if move.target is not BatchState.RELEASED:
        raise ValueError(f"not a release: {move}")
    if not move_batch(session, batch_id, move, error=reason, updated_at=now):
        return False
    guarded_move(
        session,
        RequestMoves.BACK_TO_QUEUE,
        Request.batch_id == batch_id,
        batch_id=None,
        updated_at=now,
    )
    return True


def adopt_remote(session: Session, batch_id: int, remote: RemoteBatch, now: datetime) -> bool:
    """UNKNOWN -> SUBMITTED: the batch whose create answer was lost, found remotely."""
    return move_batch(
        session,
        batch_id,
        BatchMoves.ADOPTED,
        remote_id=remote.id,
        origin="adopted",
        submitted_at=now,
        next_poll_at=now,
        updated_at=now,
        **remote_fields(remote),
    )
