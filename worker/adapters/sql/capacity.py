"""SQL of capacity: requests in flight at the API, and the limit as lowered after a 429."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from batchline.adapters.sql.rows import insert_for
from batchline.domain.states import BatchState, RequestState
from batchline.models import Batch, Control, Request

# The row that holds the effective limit (NULL: not lowered) and whose lock
# makes each admission one decision at a time.
CAPACITY_CONTROL = "capacity_limit"
# Batches whose requests count against the API's queue limit: created, or
# perhaps created (a create in flight or of unknown outcome), and not ended.
AT_THE_API = (BatchState.SUBMITTING, BatchState.UNKNOWN, BatchState.SUBMITTED)
# ... and those assembly has already cut for it (they will be created next).
COMMITTED = (BatchState.PREPARED, *AT_THE_API)


def lock_capacity(session: Session, now: datetime) -> int | None:
    """Take the capacity row's lock until the transaction ends; returns the lowered limit."""
    # Two submitters admitting at once would both see the same room: this upsert
    # locks one row (PostgreSQL) or the database (SQLite), so the second reads
    # the in-flight count only after the first's SUBMITTING move committed.
    session.execute(
        insert_for(session, Control)
        .values(name=CAPACITY_CONTROL, value=None, updated_at=now)
        .on_conflict_do_update(index_elements=[Control.name], set_={"updated_at": now})
    )
    return effective_limit(session)


def effective_limit(session: Session) -> int | None:
    value = session.scalar(select(Control.value).where(Control.name == CAPACITY_CONTROL))
    return int(value) if value else None


def set_effective_limit(session: Session, limit: int | None, now: datetime) -> None:
    """Lower the limit (after a 429), or lift it (None, after a create succeeded)."""
    stmt = insert_for(session, Control).values(
        name=CAPACITY_CONTROL, value=None if limit is None else str(limit), updated_at=now
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[Control.name], set_={"value": stmt.excluded.value, "updated_at": now}
        )
    )


def requests_in_flight(session: Session, with_prepared: bool = False) -> int:
    """Requests in batches at the API (and, `with_prepared`, in batches about to be)."""
    states = COMMITTED if with_prepared else AT_THE_API
    total = session.scalar(
        select(func.coalesce(func.sum(Batch.request_count), 0)).where(Batch.state.in_(states))
    )
    return int(total or 0)


def in_flight_by_share(session: Session) -> dict[str, int]:
    """Requests in committed batches by share key (fair shares hold each to its part)."""
    rows = session.execute(
        select(Request.share_key, func.count())
        .join(Batch, Batch.id == Request.batch_id)
        .where(Batch.state.in_(COMMITTED), Request.state == RequestState.IN_BATCH)
        .group_by(Request.share_key)
    )
    return {key: int(n) for key, n in rows}
