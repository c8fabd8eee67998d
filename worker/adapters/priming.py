"""SQL for cache priming: which prefix groups need a primer, and when they may go."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from batchline.adapters.sql import assemble as assemble_sql
from batchline.domain.planning import ENVELOPE_BYTES_PER_REQUEST
from batchline.domain.states import TERMINAL_BATCH_STATES, RequestState
from batchline.models import Batch, CachePrimer, Request

# A primed prefix is trusted for a little less than its 1-hour TTL.
PRIMED_FOR = timedelta(minutes=50)
# How long a group waits for its primer's batch before going anyway.
PRIMER_PATIENCE = timedelta(hours=1)


def groups_to_prime(session: Session, min_group: int, now: datetime) -> list[str]:
    """Prefix groups of at least `min_group` queued requests with no live primer."""
    live = select(CachePrimer.prefix_hash).where(
        (CachePrimer.state == "priming") | (CachePrimer.ready_at > now - PRIMED_FOR)
    )
    rows = session.execute(
        select(Request.prefix_hash)
        .where(
            Request.state == RequestState.QUEUED,
            Request.prefix_hash.is_not(None),
            Request.prefix_hash.not_in(live),
        )
        .group_by(Request.prefix_hash)
        .having(func.count() >= min_group)
    )
    return [str(r[0]) for r in rows]


def start_primer(session: Session, prefix_hash: str, now: datetime) -> int | None:
    """A one-request batch for the group's oldest request; the rest of the group waits."""
    oldest = session.execute(
        select(Request.id, Request.params_bytes)
        .where(Request.prefix_hash == prefix_hash, Request.state == RequestState.QUEUED)
        .order_by(Request.created_at, Request.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if oldest is None:
        return None
    # The whole group, primer included, goes with 1-hour breakpoints: the same prefix.
    session.execute(
        update(Request)
        .where(Request.prefix_hash == prefix_hash, Request.state == RequestState.QUEUED)
        .values(cache_ttl_1h=True)
    )
    batch_id = assemble_sql.create_batch_intent(
        session, [oldest[0]], oldest[1] + ENVELOPE_BYTES_PER_REQUEST, now
    )
    primer = session.get(CachePrimer, prefix_hash)
    if primer is None:
        session.add(
            CachePrimer(prefix_hash=prefix_hash, batch_id=batch_id, state="priming", created_at=now)
        )
    else:
        primer.batch_id, primer.state, primer.created_at, primer.ready_at = (
            batch_id,
            "priming",
            now,
            None,
        )
    return batch_id


def settle_primers(session: Session, now: datetime) -> list[str]:
    """Primers whose batch is over release their group; returns those groups."""
    finished = select(Batch.id).where(Batch.state.in_([s.value for s in TERMINAL_BATCH_STATES]))
    done = list(
        session.scalars(
            select(CachePrimer.prefix_hash).where(
                CachePrimer.state == "priming",
                CachePrimer.batch_id.is_(None)
                | CachePrimer.batch_id.in_(finished)
                # A slow primer must not hold its group for a day: go without it.
                | (CachePrimer.created_at < now - PRIMER_PATIENCE),
            )
        )
    )
    if done:
        session.execute(
            update(CachePrimer)
            .where(CachePrimer.prefix_hash.in_(done))
            .values(state="ready", ready_at=now)
        )
    return done
