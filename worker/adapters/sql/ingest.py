"""SQL of ingestion: results in, requests settled, each exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Table,
    select,
    update,
)
from sqlalchemy.orm import Session

from batchline.adapters import bulk
from batchline.adapters.sql.rows import among, chunks, guarded_move, move_batch
from batchline.domain.custom_ids import (
    RequestRef,
)
from batchline.domain.states import BatchMoves, RequestState, request_move
from batchline.models import Request, Result


@dataclass(frozen=True)
class Member:
    request_id: str
    state: str
    batch_id: int | None
    attempts: int
    charged_attempts: int
    max_attempts: int
    on_result: str | None


def load_members(session: Session, request_ids: Sequence[str]) -> dict[str, Member]:
    out: dict[str, Member] = {}
    for part in chunks(list(request_ids)):
        rows = session.execute(
            select(
                Request.id,
                Request.state,
                Request.batch_id,
                Request.attempts,
                Request.charged_attempts,
                Request.max_attempts,
                Request.on_result,
            ).where(among(session, Request.id, part))
        )
        for row in rows:
            out[row[0]] = Member(*row)
    return out


def insert_results(session: Session, batch_id: int, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert one batch's result rows; returns the custom_ids that were new (not seen before).

    Rows already stored are looked up first and only the others are written, by
    COPY on PostgreSQL and one executemany elsewhere: cheaper than staging them
    or asking the database to skip conflicts row by row. The ingest lease keeps
    a second ingester away; should one still race this transaction, the unique
    constraint aborts it and the next sweep ingests again, finding them stored.
    """
    if not rows:
        return set()
    ids = [row["custom_id"] for row in rows]
    stored = set(
        session.scalars(
            select(Result.custom_id).where(
                Result.batch_id == batch_id, among(session, Result.custom_id, ids)
            )
        )
    )
    fresh: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["custom_id"] not in stored:
            fresh.setdefault(row["custom_id"], row)  # a line repeated in the stream counts once
    bulk.insert_new(session, cast(Table, Result.__table__), list(fresh.values()))
    return set(fresh)


def mark_duplicates(session: Session, batch_id: int, custom_ids: Sequence[str]) -> None:
    for part in chunks(list(custom_ids)):
        session.execute(
            update(Result)
            .where(Result.batch_id == batch_id, among(session, Result.custom_id, part))
            .values(duplicate=True)
        )


def forget_requests(session: Session, batch_id: int, custom_ids: Sequence[str]) -> None:
    """These results name no known request: kept, but pointing at none."""
    for part in chunks(list(custom_ids)):
        session.execute(
            update(Result)
            .where(Result.batch_id == batch_id, among(session, Result.custom_id, part))
            .values(request_id=None)
        )


def settle_requests(
    session: Session,
    batch_id: int,
    request_ids: Sequence[str],
    state: RequestState,
    now: datetime,
    charge: bool,
    error: str | None = None,
    attempt: int | None = None,
) -> list[str]:
    """Move this batch's in_batch requests to `state` (only those on `attempt`,
    when given); returns those that moved."""
    terminal = state is not RequestState.QUEUED
    move = request_move(RequestState.IN_BATCH, state)
    values: dict[str, Any] = {
        "batch_id": None,
        "updated_at": now,
        "last_error": error,
    }
    if charge:
        values["charged_attempts"] = Request.charged_attempts + 1
    if terminal:
        values["finished_at"] = now
    guards = _still_in_batch(batch_id)
    if attempt is not None:
        guards = (*guards, Request.attempts == attempt)
    moved: list[str] = []
    for part in chunks(list(request_ids)):
        # Guarded on membership: a request settled by another batch stays as it is.
        moved.extend(
            guarded_move(
                session,
                move,
                among(session, Request.id, part),
                *guards,
                unindexed=True,
                returning=Request.id,
                **values,
            )
        )
    return moved


def settle_attempts(
    session: Session,
    batch_id: int,
    refs: Sequence[RequestRef],
    state: RequestState,
    now: datetime,
) -> set[str]:
    """Move each request to `state` if it is still in this batch on that very
    attempt, charging the attempt; returns the ids that moved."""
    by_attempt: dict[int, list[str]] = {}
    for ref in refs:
        by_attempt.setdefault(ref.attempt, []).append(ref.request_id)
    moved: set[str] = set()
    for attempt, request_ids in by_attempt.items():
        moved.update(
            settle_requests(session, batch_id, request_ids, state, now, True, attempt=attempt)
        )
    return moved


def _still_in_batch(batch_id: int) -> tuple[Any, ...]:
    """The membership guard, written so no index can serve it.

    The rows are found by primary key (the id list). Left indexable, the guard
    tempts the planner, when its statistics predate the batch (always, for a
    new batch), to scan every row of the batch once per chunk instead.
    """
    # The state half (`state + ''`) is guarded_move's `unindexed`.
    return (Request.batch_id + 0 == batch_id,)


def finish_ingestion(session: Session, batch_id: int, now: datetime) -> bool:
    return move_batch(
        session,
        batch_id,
        BatchMoves.INGESTED,
        ingested_at=now,
        lease_until=None,
        updated_at=now,
    )


def requests_left_in_batch(session: Session, batch_id: int) -> list[str]:
    return list(
        session.scalars(
            select(Request.id).where(
                Request.batch_id == batch_id, Request.state == RequestState.IN_BATCH
            )
        )
    )
