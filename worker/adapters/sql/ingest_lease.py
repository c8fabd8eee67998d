"""SQL of the ingestion lease: one download per batch, renewed by time, bounded in number."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import (
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from batchline.adapters.sql.rows import changed
from batchline.domain.states import BatchState
from batchline.models import Batch

# pg_advisory_xact_lock key serialising the count of running downloads.
INGEST_SLOTS_LOCK = 0x62_6C_69_6E_67  # "bling"


def batches_to_ingest(
    session: Session, now: datetime, limit: int = 100, besides: int | None = None
) -> list[int]:
    """Ended batches whose lease is free, oldest first; `besides` one left out."""
    stmt = (
        select(Batch.id)
        .where(
            Batch.state == BatchState.ENDED,
            or_(Batch.lease_until.is_(None), Batch.lease_until < now),
        )
        .order_by(Batch.id)
        .limit(limit)
    )
    if besides is not None:
        stmt = stmt.where(Batch.id != besides)
    return list(session.scalars(stmt))


def running_downloads(session: Session, now: datetime, lease: timedelta) -> int:
    """Downloads holding a slot: a lease more than half its length ahead (a running
    download renews every third of it; a nearer one is a back-off or a dead worker's)."""
    running = session.scalar(
        select(func.count()).where(
            Batch.state == BatchState.ENDED, Batch.lease_until > now + lease / 2
        )
    )
    return int(running or 0)


def take_ingest_lease(
    session: Session, batch_id: int, now: datetime, until: datetime, slots: int | None = None
) -> bool:
    """Take the batch's ingestion lease, if it is free and (given `slots`) fewer
    than that many downloads run. A running download renews its lease every third
    of its length, so it always ends more than half a lease ahead; a lease nearer
    than that is a back-off or a dead worker's, and holds no slot."""
    if slots is not None:
        if session.get_bind().dialect.name == "postgresql":
            # Two workers counting at once would both see a free slot: count in turn.
            session.execute(select(func.pg_advisory_xact_lock(INGEST_SLOTS_LOCK)))
        if running_downloads(session, now, until - now) >= slots:
            return False
    # Guarded: a second ingester waits for the first's lease to lapse.
    result = session.execute(
        update(Batch)
        .where(
            Batch.id == batch_id,
            Batch.state == BatchState.ENDED,
            or_(Batch.lease_until.is_(None), Batch.lease_until < now),
        )
        .values(lease_until=until)
    )
    return changed(result) == 1


def release_ingest_lease(session: Session, batch_id: int) -> None:
    session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.state == BatchState.ENDED)
        .values(lease_until=None)
    )


def extend_ingest_lease(session: Session, batch_id: int, held: datetime, until: datetime) -> bool:
    """Move the lease this worker holds (its end is `held`) to `until`; False when
    another worker took it meanwhile (the lease had lapsed)."""
    # Guarded on the exact end this worker set: a taken-over lease is never extended.
    result = session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.state == BatchState.ENDED, Batch.lease_until == held)
        .values(lease_until=until)
    )
    return changed(result) == 1
