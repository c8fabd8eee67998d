"""SQL of assembly: queued requests cut into batch intents."""

from __future__ import annotations

from collections.abc import Sequence
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

from batchline.adapters.sql.rows import among, changed, chunks
from batchline.domain.states import BatchState, RequestState
from batchline.models import Batch, CachePrimer, Request


def queued_summary(
    session: Session, held_models: Sequence[str] = ()
) -> tuple[int, int, datetime | None]:
    """How many requests are queued, their total size, and the oldest one's intake time."""
    row = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(Request.params_bytes), 0),
            func.min(Request.created_at),
        ).where(Request.state == RequestState.QUEUED, _not_held(held_models))
    ).one()
    return int(row[0]), int(row[1]), row[2]


def _not_held(held_models: Sequence[str] = ()) -> Any:
    """Excludes requests whose prefix group waits for its cache primer to finish,
    and those of `held_models` (no price under a spend cap: see services.assemble)."""
    priming = select(CachePrimer.prefix_hash).where(CachePrimer.state == "priming")
    free = or_(Request.prefix_hash.is_(None), Request.prefix_hash.not_in(priming))
    return and_(free, Request.model.not_in(list(held_models))) if held_models else free


def oldest_queued_betas(session: Session, held_models: Sequence[str] = ()) -> str | None:
    """The betas of the oldest queued request: the group the next batch is cut from."""
    stmt = (
        select(Request.betas)
        .where(Request.state == RequestState.QUEUED, _not_held(held_models))
        .order_by(Request.created_at, Request.id)
        .limit(1)
    )
    return session.scalar(stmt)


def lock_queued_requests(
    session: Session, limit: int, held_models: Sequence[str] = (), betas: str | None = None
) -> list[tuple[str, int]]:
    """The oldest queued requests with exactly these betas, locked; rows another
    claimer holds are skipped. A batch is created with one anthropic-beta header,
    so requests with different betas never share one."""
    same_betas = Request.betas.is_(None) if betas is None else Request.betas == betas
    stmt = (
        select(Request.id, Request.params_bytes)
        .where(Request.state == RequestState.QUEUED, _not_held(held_models), same_betas)
        .order_by(Request.created_at, Request.id)
        .limit(limit)
        # Two claimers never take the same request: each skips the other's locked rows.
        .with_for_update(skip_locked=True)
    )
    return [(r[0], r[1]) for r in session.execute(stmt)]


def create_batch_intent(
    session: Session, request_ids: Sequence[str], body_bytes: int, now: datetime
) -> int:
    batch = Batch(
        state=BatchState.PREPARED,
        origin="planned",
        request_count=len(request_ids),
        body_bytes=body_bytes,
        created_at=now,
        updated_at=now,
        count_processing=0,
        count_succeeded=0,
        count_errored=0,
        count_canceled=0,
        count_expired=0,
        submit_tries=0,
        cancel_requested=False,
    )
    session.add(batch)
    session.flush()
    moved = 0
    for part in chunks(request_ids):
        moved += changed(
            session.execute(
                update(Request)
                # Not indexable on state, for the reason given in _still_in_batch.
                .where(among(session, Request.id, part), Request.state + "" == RequestState.QUEUED)
                .values(
                    state=RequestState.IN_BATCH,
                    batch_id=batch.id,
                    attempts=Request.attempts + 1,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
        )
    if moved != len(request_ids):
        raise RuntimeError(f"claimed {len(request_ids)} requests but moved {moved}")
    return batch.id
