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
)
from sqlalchemy.orm import Session

from batchline.adapters.sql.rows import among, chunks, guarded_move
from batchline.domain.states import BatchState, RequestMoves, RequestState
from batchline.models import Batch, CachePrimer, Request

# pg_advisory_xact_lock key: one assembler cuts at a time (see one_assembler).
ASSEMBLER_LOCK = 0x62_6C_63_75_74  # "blcut"


def one_assembler(session: Session) -> None:
    """Wait until no other transaction is cutting a batch; held to this one's end.

    Row locks (SKIP LOCKED) already keep two assemblers off the same requests;
    this keeps them from cutting at the same moment at all, so a second one
    (an intake that found a full batch, a tick) counts what the first left.
    SQLite runs one writer at a time by itself."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(ASSEMBLER_LOCK)))


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


def queued_by_priority(
    session: Session, held_models: Sequence[str] = ()
) -> list[tuple[int, int, int, datetime]]:
    """(priority, count, total size, oldest intake time) of the queued requests, per priority."""
    rows = session.execute(
        select(
            Request.priority,
            func.count(),
            func.coalesce(func.sum(Request.params_bytes), 0),
            func.min(Request.created_at),
        )
        .where(Request.state == RequestState.QUEUED, _not_held(held_models))
        .group_by(Request.priority)
    )
    return [(int(p), int(n), int(b), oldest) for p, n, b, oldest in rows]


def queued_by_share(
    session: Session, held_models: Sequence[str] = (), betas: str | None = None
) -> dict[str, int]:
    """How many requests each share key has queued in one betas group."""
    rows = session.execute(
        select(Request.share_key, func.count())
        .where(Request.state == RequestState.QUEUED, _not_held(held_models), _same_betas(betas))
        .group_by(Request.share_key)
    )
    return {key: int(n) for key, n in rows}


def _same_betas(betas: str | None) -> Any:
    return Request.betas.is_(None) if betas is None else Request.betas == betas


def oldest_queued_betas(
    session: Session, held_models: Sequence[str] = (), priority: int = 0
) -> str | None:
    """The betas of the oldest queued request of `priority` (the highest queued: it
    goes next), the group the next batch is cut from."""
    stmt = (
        select(Request.betas)
        .where(
            Request.state == RequestState.QUEUED,
            Request.priority == priority,
            _not_held(held_models),
        )
        .order_by(Request.created_at, Request.id)
        .limit(1)
    )
    return session.scalar(stmt)


def lock_queued_requests(
    session: Session,
    limit: int,
    held_models: Sequence[str] = (),
    betas: str | None = None,
    share_key: str | None = None,
    priorities: Sequence[int] = (0,),
) -> list[tuple[str, int]]:
    """The next queued requests (highest of `priorities` first, then oldest) with
    exactly these betas, and of one share key when given, locked; rows another
    claimer holds are skipped. A batch is created with one anthropic-beta header,
    so requests with different betas never share one."""
    taken: list[tuple[str, int]] = []
    # One range scan per priority (ix_requests_queued_priority, or _share with a
    # key), so the cost follows the batch, not the queue behind it.
    for priority in sorted(set(priorities), reverse=True):
        if len(taken) >= limit:
            break
        where = [
            Request.state == RequestState.QUEUED,
            Request.priority == priority,
            _not_held(held_models),
            _same_betas(betas),
        ]
        if share_key is not None:
            where.append(Request.share_key == share_key)
        stmt = (
            select(Request.id, Request.params_bytes)
            .where(*where)
            .order_by(Request.created_at, Request.id)
            .limit(limit - len(taken))
            # Two claimers never take the same request: each skips the other's locked rows.
            .with_for_update(skip_locked=True)
        )
        taken += [(r[0], r[1]) for r in session.execute(stmt)]
    return taken


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
        moved += guarded_move(
            session,
            RequestMoves.CLAIMED,
            among(session, Request.id, part),
            # Not indexable on state, for the reason given in ingest._still_in_batch.
            unindexed=True,
            synchronize=False,
            batch_id=batch.id,
            attempts=Request.attempts + 1,
            updated_at=now,
        )
    if moved != len(request_ids):
        raise RuntimeError(f"claimed {len(request_ids)} requests but moved {moved}")
    return batch.id
