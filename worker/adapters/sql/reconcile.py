"""SQL of reconciliation: creates whose outcome is unknown, stray and foreign batches."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    and_,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from batchline.adapters.batch_api import RemoteBatch
from batchline.adapters.sql.rows import among, changed, chunks
from batchline.adapters.sql.submit import remote_fields
from batchline.domain.custom_ids import (
    RequestRef,
)
from batchline.domain.states import BatchState, RequestState
from batchline.models import Batch, Request


def stale_submissions(session: Session, started_before: datetime) -> list[int]:
    return list(
        session.scalars(
            select(Batch.id).where(
                Batch.state == BatchState.SUBMITTING, Batch.submit_started_at < started_before
            )
        )
    )


@dataclass(frozen=True)
class UnknownIntent:
    batch_id: int
    request_count: int
    submit_started_at: datetime | None
    # Requests still held: those no remote batch's results have claimed yet.
    held: int


def unknown_intents(session: Session) -> list[UnknownIntent]:
    held = (
        select(func.count())
        .where(Request.batch_id == Batch.id, Request.state == RequestState.IN_BATCH)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Batch.id, Batch.request_count, Batch.submit_started_at, held)
        .where(Batch.state == BatchState.UNKNOWN)
        .order_by(Batch.submit_started_at)
    )
    return [UnknownIntent(*row) for row in rows]


def open_intent_sizes(session: Session, horizon: datetime) -> set[int]:
    """Sizes of the intents whose remote batch may be unaccounted for: a create
    sends exactly its intent's requests, so a batch of another size is not ours."""
    return set(
        session.scalars(select(Batch.request_count).where(_open_submission(horizon)).distinct())
    )


def found_batches_pending(session: Session) -> list[tuple[int, datetime | None]]:
    """(request_count, remote created_at) of found batches whose results are not yet read:
    until they are, any of them may be the batch of an intent whose create was lost."""
    rows = session.execute(
        select(Batch.request_count, Batch.remote_created_at).where(
            Batch.origin == "adopted",
            Batch.state.in_([BatchState.SUBMITTED, BatchState.ENDED]),
        )
    )
    return [(count, created) for count, created in rows]


def claim_from_unknown(session: Session, batch_id: int, refs: Sequence[RequestRef]) -> int:
    """Move the requests these results name into this (found) batch, from the intent
    whose create outcome is not known, on that very attempt; returns how many moved.

    The custom_ids are the evidence: an attempt belongs to one intent only, so a
    result for it can only have come from that intent's create.
    """
    by_attempt: dict[int, list[str]] = defaultdict(list)
    for ref in refs:
        by_attempt[ref.attempt].append(ref.request_id)
    # SUBMITTING too: a create whose answer is so late its batch was found first
    # (a recorded answer would have moved it on, and a late one defers to this batch).
    lost = select(Batch.id).where(Batch.state.in_([BatchState.UNKNOWN, BatchState.SUBMITTING]))
    moved = 0
    for attempt, request_ids in by_attempt.items():
        for part in chunks(request_ids):
            # Guarded: only a request still held by an unknown intent on this attempt moves.
            result = session.execute(
                update(Request)
                .where(
                    among(session, Request.id, part),
                    Request.attempts == attempt,
                    Request.state == RequestState.IN_BATCH,
                    Request.batch_id.in_(lost),
                )
                .values(batch_id=batch_id)
            )
            moved += changed(result)
    return moved


def note_foreign(session: Session, batch_id: int, foreign: int, now: datetime) -> None:
    """A found batch whose results name requests of another client or deployment."""
    session.execute(
        update(Batch)
        .where(Batch.id == batch_id)
        .values(
            error=f"foreign: {foreign} results name no request of this deployment",
            updated_at=now,
        )
    )


def known_remote_ids(session: Session, remote_ids: Sequence[str]) -> set[str]:
    if not remote_ids:
        return set()
    return set(session.scalars(select(Batch.remote_id).where(Batch.remote_id.in_(remote_ids))))


def insert_stray_batch(session: Session, remote: RemoteBatch, now: datetime) -> int:
    """A remote batch no intent accounts for: tracked (its spend, its results) until
    its custom_ids say whose it is: a lost create's, a duplicate, or a foreign one."""
    batch = Batch(
        state=BatchState.SUBMITTED,
        origin="adopted",
        remote_id=remote.id,
        request_count=remote.request_count,
        body_bytes=0,
        created_at=now,
        updated_at=now,
        submitted_at=now,
        next_poll_at=now,
        submit_tries=0,
        cancel_requested=False,
        error="found by the reconciler: its results will say whose it is",
        **remote_fields(remote),
    )
    session.add(batch)
    session.flush()
    return batch.id


def earliest_open_submission(session: Session, horizon: datetime) -> datetime | None:
    """Start of the oldest create whose remote batch may still be unaccounted for.

    Released intents count for a day (`horizon`): a create that reached the
    API after its caller gave up would show up as a stray batch in that time.
    """
    return session.scalar(
        select(func.min(Batch.submit_started_at)).where(_open_submission(horizon))
    )


def _open_submission(horizon: datetime) -> Any:
    return or_(
        Batch.state.in_([BatchState.SUBMITTING, BatchState.UNKNOWN]),
        and_(Batch.state == BatchState.RELEASED, Batch.submit_started_at > horizon),
    )
