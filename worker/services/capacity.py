"""Capacity: batchline keeps its requests in flight under the API's queue limit.

The configured limit (BATCHLINE_MAX_IN_FLIGHT_REQUESTS) is what the organisation
may have waiting in batches. A create answered 429 lowers the effective limit to
what was in flight then; the first create that succeeds lifts it again. Both
assembly (how many requests it cuts) and submission (whether create may be
called now) read the room from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from batchline.adapters.sql import capacity as capacity_sql
from batchline.adapters.sql import rows as rows_sql
from batchline.domain.scheduling import lowered_limit, room


@dataclass(frozen=True)
class CapacityUse:
    """What `status` and the metrics show."""

    in_flight: int
    prepared: int
    limit: int
    effective: int | None

    @property
    def effective_limit(self) -> int:
        """The limit in force now (the configured one when not lowered; 0: none)."""
        if self.effective is None:
            return self.limit
        return self.effective if self.limit <= 0 else min(self.limit, self.effective)

    def describe(self) -> str:
        if self.limit <= 0:
            return f"{self.in_flight:,} requests in flight (no limit set)"
        lowered = (
            f", lowered to {self.effective_limit:,} after a 429 until a create succeeds"
            if self.effective is not None
            else ""
        )
        return (
            f"{self.in_flight:,} of {self.limit:,} requests in flight{lowered};"
            f" {self.prepared:,} in batches waiting to be created"
        )


def capacity_use(session: Session, limit: int) -> CapacityUse:
    in_flight = capacity_sql.requests_in_flight(session)
    prepared = capacity_sql.requests_in_flight(session, with_prepared=True) - in_flight
    return CapacityUse(in_flight, prepared, limit, capacity_sql.effective_limit(session))


def submit_room(session: Session, limit: int) -> int | None:
    """How many more requests may go to the API now (created batches count, prepared
    ones do not), None with no limit set: a hint for handing out submits; `admit`
    decides under the lock."""
    if limit <= 0:
        return None
    in_flight = capacity_sql.requests_in_flight(session)
    return room(limit, capacity_sql.effective_limit(session), in_flight)


def assembly_room(session: Session, limit: int) -> int:
    """How many requests assembly may still cut into batches (prepared ones count)."""
    if limit <= 0:
        return room(0, None, 0)
    committed = capacity_sql.requests_in_flight(session, with_prepared=True)
    return room(limit, capacity_sql.effective_limit(session), committed)


def admit(session: Session, batch_id: int, limit: int, now: datetime) -> str | None:
    """None if the batch may be created now (the caller commits its SUBMITTING move
    under this lock), else why it waits. Never admits a create over the limit."""
    if limit <= 0:
        return None
    effective = capacity_sql.lock_capacity(session, now)
    batch = rows_sql.get_batch(session, batch_id)
    count = batch.request_count if batch is not None else 0
    in_flight = capacity_sql.requests_in_flight(session)
    if count <= room(limit, effective, in_flight):
        return None
    return (
        f"batch {batch_id} ({count:,} requests) waits for capacity: "
        + CapacityUse(in_flight, 0, limit, effective).describe()
    )


def after_rate_limited(session: Session, limit: int, now: datetime) -> int | None:
    """A create was answered 429: lower the effective limit to what is in flight."""
    if limit <= 0:
        return None
    effective = capacity_sql.lock_capacity(session, now)
    lowered = lowered_limit(limit, effective, capacity_sql.requests_in_flight(session))
    capacity_sql.set_effective_limit(session, lowered, now)
    return lowered


def after_created(session: Session, limit: int, now: datetime) -> None:
    """A create succeeded: the API has room again, so the configured limit applies."""
    if limit > 0 and capacity_sql.effective_limit(session) is not None:
        capacity_sql.set_effective_limit(session, None, now)
