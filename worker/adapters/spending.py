"""SQL for the daily spend cap: today's spend, what batches in flight reserve,
and the lock that makes each reservation one decision at a time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from batchline.domain.states import BatchState, RequestState
from batchline.models import Batch, Control, Request, RequestBody

CAP_LOCK = "spend_cap_lock"
# A batch in these states may still be billed, so its worst case stays reserved;
# it is settled when ingestion has counted its results (INGESTED: reserved ->
# actual) or when it turns out never to have been created (RELEASED, REFUSED).
RESERVING = (BatchState.SUBMITTING, BatchState.UNKNOWN, BatchState.SUBMITTED, BatchState.ENDED)


def lock_cap(session: Session, now: datetime) -> None:
    """Take the cap's row lock, held until the caller's transaction ends."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    # Two submitters checking the room at once would both see it: this upsert
    # locks one row (PostgreSQL) or the database (SQLite's BEGIN IMMEDIATE), so
    # the second reads the room only after the first's reservation committed.
    session.execute(
        insert(Control)
        .values(name=CAP_LOCK, value=None, updated_at=now)
        .on_conflict_do_update(index_elements=[Control.name], set_={"updated_at": now})
    )


def reserved(session: Session) -> Decimal:
    """The worst cases of every batch that may still be billed."""
    total = session.scalar(
        select(func.coalesce(func.sum(Batch.worst_case_usd), 0)).where(
            Batch.state.in_(list(RESERVING))
        )
    )
    return Decimal(str(total))


def set_worst_case(session: Session, batch_id: int, usd: Decimal) -> None:
    session.execute(update(Batch).where(Batch.id == batch_id).values(worst_case_usd=usd))


def stored_worst_case(session: Session, batch_id: int) -> Decimal | None:
    value = session.scalar(select(Batch.worst_case_usd).where(Batch.id == batch_id))
    return None if value is None else Decimal(str(value))


def batch_params(conn: Connection, batch_id: int, fetch: int = 1_000) -> Iterator[tuple[str, int]]:
    """Each request of a batch as (params JSON, its size), streamed."""
    stmt = (
        select(RequestBody.params, Request.params_bytes)
        .join(RequestBody, RequestBody.request_id == Request.id)
        .where(Request.batch_id == batch_id, Request.state == RequestState.IN_BATCH)
        .execution_options(yield_per=fetch)
    )
    for rows in conn.execute(stmt).partitions():
        yield from ((r[0], r[1]) for r in rows)


def may_fit(session: Session, batch_ids: Sequence[int], room: Decimal) -> list[int]:
    """Those of `batch_ids` whose worst case is not yet known or fits in `room`."""
    if room <= 0:
        return []
    stmt = select(Batch.id).where(
        Batch.id.in_(list(batch_ids)),
        or_(Batch.worst_case_usd.is_(None), Batch.worst_case_usd <= room),
    )
    return sorted(session.scalars(stmt))


def waiting_batches(session: Session, room: Decimal) -> tuple[int, Decimal | None]:
    """Prepared batches whose worst case does not fit in `room`: how many, the smallest."""
    row = session.execute(
        select(func.count(), func.min(Batch.worst_case_usd)).where(
            Batch.state == BatchState.PREPARED, Batch.worst_case_usd > room
        )
    ).one()
    return int(row[0]), None if row[1] is None else Decimal(str(row[1]))


def pending_models(session: Session, queued_only: bool = False) -> Sequence[str]:
    """Models of requests not yet sent: queued, or (unless queued_only) in prepared batches."""
    stmt = select(Request.model).distinct()
    if queued_only:
        stmt = stmt.where(Request.state == RequestState.QUEUED)
    else:
        prepared = select(Batch.id).where(Batch.state == BatchState.PREPARED)
        stmt = stmt.where(
            (Request.state == RequestState.QUEUED)
            | ((Request.state == RequestState.IN_BATCH) & Request.batch_id.in_(prepared))
        )
    return list(session.scalars(stmt))
