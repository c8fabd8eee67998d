"""SQL of the deadline fallback: requests due for the synchronous API, their
calls, their one synchronous result, and batches left with nothing to do."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, exists, func, insert, literal, select, update
from sqlalchemy.orm import Session

from batchline.adapters.sql.rows import changed, guarded_move, insert_for
from batchline.domain.states import BatchState, RequestMoves, RequestState
from batchline.models import Batch, Control, Fallback, Request, RequestBody, Result

OPEN_REQUEST = [RequestState.QUEUED, RequestState.IN_BATCH]
OPEN_FALLBACK = ["pending", "calling"]
# Set after a 429 from the synchronous API: no fallback call starts before it.
SYNC_PAUSE_CONTROL = "sync_rate_limited_until"


@dataclass(frozen=True)
class Claimed:
    request_id: str
    params: str
    betas: str | None
    attempt: int
    tries: int
    deadline_at: datetime


def has_deadline_work(engine: Engine) -> bool:
    """An unsettled request with a deadline, or a fallback not finished: two EXISTS
    on partial indexes, so beat can skip the scan while nothing has a deadline."""
    open_deadline = select(Request.id).where(
        Request.deadline_at.is_not(None), Request.state.in_(OPEN_REQUEST)
    )
    open_fallback = select(Fallback.request_id).where(Fallback.state.in_(OPEN_FALLBACK))
    with engine.connect() as conn:
        return bool(conn.scalar(select(exists(open_deadline) | exists(open_fallback))))


def mark_due(session: Session, before: datetime, now: datetime) -> int:
    """A pending fallback for every unsettled request whose deadline is before `before`
    and that has none yet (a request falls back once)."""
    due = select(
        Request.id,
        Request.batch_id,
        literal("pending"),
        literal(0),
        literal(now, Fallback.next_try_at.type),
        Request.deadline_at,
        literal(now, Fallback.created_at.type),
        literal(now, Fallback.updated_at.type),
    ).where(
        Request.deadline_at.is_not(None),
        Request.deadline_at < before,
        Request.state.in_(OPEN_REQUEST),
        ~exists().where(Fallback.request_id == Request.id),
    )
    columns = [
        "request_id",
        "batch_id",
        "state",
        "tries",
        "next_try_at",
        "deadline_at",
        "created_at",
        "updated_at",
    ]
    # Two scans at once: the second one's rows conflict on the key and are skipped.
    stmt = insert_for(session, Fallback).from_select(columns, due).on_conflict_do_nothing()
    # Counted from RETURNING: the row count of INSERT … SELECT is not reported everywhere.
    return len(session.execute(stmt.returning(Fallback.request_id)).all())


def close_settled(session: Session, now: datetime) -> int:
    """Open fallbacks whose request its batch settled first: nothing left to call
    (a lapsed claim too, or it would be claimed again and again)."""
    settled = ~exists().where(Request.id == Fallback.request_id, Request.state.in_(OPEN_REQUEST))
    lapsed = and_(Fallback.state == "calling", Fallback.claimed_until < now)
    result = session.execute(
        update(Fallback)
        .where((Fallback.state == "pending") | lapsed, settled)
        .values(state="failed", last_error="settled by its batch first", updated_at=now)
    )
    return changed(result)


def claim_due(session: Session, now: datetime, slots: int, claim_until: datetime) -> list[Claimed]:
    """Claim due fallbacks, nearest deadline first, while fewer than `slots` calls
    are in flight over all workers; a claim that lapsed (its worker died) is due again."""
    lapsed = and_(Fallback.state == "calling", Fallback.claimed_until < now)
    calling = session.scalar(
        select(func.count()).where(Fallback.state == "calling", Fallback.claimed_until >= now)
    )
    free = slots - int(calling or 0)
    if free <= 0:
        return []
    due = (
        select(Fallback.request_id)
        .where((Fallback.state == "pending") | lapsed, Fallback.next_try_at <= now)
        .order_by(Fallback.deadline_at)
        .limit(free)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)  # two workers never claim the same row
    ids = list(session.scalars(due))
    if not ids:
        return []
    session.execute(
        update(Fallback)
        .where(Fallback.request_id.in_(ids))
        .values(
            state="calling", tries=Fallback.tries + 1, claimed_until=claim_until, updated_at=now
        )
    )
    rows = session.execute(
        select(
            Request.id,
            RequestBody.params,
            Request.betas,
            Request.attempts,
            Fallback.tries,
            Fallback.deadline_at,
        )
        .join(Fallback, Fallback.request_id == Request.id)
        .join(RequestBody, RequestBody.request_id == Request.id)
        .where(Request.id.in_(ids), Request.state.in_(OPEN_REQUEST))
    )
    return [Claimed(*row) for row in rows]


def record_sync_result(
    session: Session, request_id: str, row: dict[str, Any], now: datetime
) -> bool:
    """Store the one synchronous result and settle its request, unless its batch
    settled it first (then the result is kept as a counted duplicate); True if it settled."""
    # The batch it is in now: it may have been batched after it fell due while queued.
    batch_id = session.scalar(select(Request.batch_id).where(Request.id == request_id))
    if batch_id is not None:
        session.execute(
            update(Fallback).where(Fallback.request_id == request_id).values(batch_id=batch_id)
        )
    # Guarded on the open states: the request is settled once, by whichever path is
    # first. It is in one of them at most, so at most one of the two moves matches.
    values: dict[str, Any] = {
        "batch_id": None,
        "finished_at": now,
        "updated_at": now,
        "last_error": None,
    }
    mine = Request.id == request_id
    queued: int = guarded_move(session, RequestMoves.ANSWERED_WHILE_QUEUED, mine, **values)
    batched: int = guarded_move(session, RequestMoves.SUCCEEDED, mine, **values)
    settled = queued + batched == 1
    session.execute(insert(Result).values(**row, via="sync", batch_id=None, duplicate=not settled))
    _close(session, request_id, "done", None, now)
    return settled


def retry_later(session: Session, request_id: str, at: datetime, error: str, now: datetime) -> None:
    session.execute(
        update(Fallback)
        .where(Fallback.request_id == request_id, Fallback.state == "calling")
        .values(
            state="pending", next_try_at=at, claimed_until=None, last_error=error, updated_at=now
        )
    )


def give_up(session: Session, request_id: str, error: str, now: datetime) -> None:
    """The request is left for its batch (or the next batch, if still queued)."""
    _close(session, request_id, "failed", error, now)


def _close(session: Session, request_id: str, state: str, error: str | None, now: datetime) -> None:
    session.execute(
        update(Fallback)
        .where(Fallback.request_id == request_id, Fallback.state.in_(OPEN_FALLBACK))
        .values(state=state, claimed_until=None, last_error=error, updated_at=now)
    )


def sync_paused_until(session: Session) -> datetime | None:
    control = session.get(Control, SYNC_PAUSE_CONTROL)
    if control is None or not control.value:
        return None
    return datetime.fromisoformat(control.value)


def pause_sync(session: Session, until: datetime, now: datetime) -> None:
    stmt = insert_for(session, Control).values(
        name=SYNC_PAUSE_CONTROL, value=until.isoformat(), updated_at=now
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[Control.name], set_={"value": until.isoformat(), "updated_at": now}
        )
    )


def batches_all_fallen_back(session: Session) -> list[int]:
    """In-flight batches whose every unsettled request was settled synchronously:
    no member is left in them, and some request fell back out of them."""
    left = exists().where(Request.batch_id == Batch.id, Request.state == RequestState.IN_BATCH)
    fell_back = exists().where(Fallback.batch_id == Batch.id, Fallback.state == "done")
    return list(
        session.scalars(
            select(Batch.id).where(
                Batch.state == BatchState.SUBMITTED,
                Batch.cancel_requested.is_(False),
                fell_back,
                ~left,
            )
        )
    )


@dataclass(frozen=True)
class DeadlineFigures:
    """What status, metrics and doctor show about deadlines and fallbacks."""

    fallbacks: dict[str, int]
    at_risk: int
    sync_results: int
    sync_duplicates: int
    # Spent on synchronous answers, at full price (USD).
    sync_cost_usd: float


def deadline_figures(session: Session, risk_before: datetime) -> DeadlineFigures:
    """`at_risk`: unsettled requests whose deadline is before `risk_before` and
    whose fallback has not (yet) answered."""
    states = Counter(
        dict(session.execute(select(Fallback.state, func.count()).group_by(Fallback.state)).all())
    )
    answered = exists().where(Fallback.request_id == Request.id, Fallback.state == "done")
    at_risk = session.scalar(
        select(func.count()).where(
            Request.deadline_at.is_not(None),
            Request.deadline_at < risk_before,
            Request.state.in_(OPEN_REQUEST),
            ~answered,
        )
    )
    sync = session.execute(
        select(
            func.count(),
            func.count().filter(Result.duplicate.is_(True)),
            func.coalesce(func.sum(Result.cost_usd), 0),
        ).where(Result.via == "sync")
    ).one()
    return DeadlineFigures(
        {s: int(states.get(s, 0)) for s in ("pending", "calling", "done", "failed")},
        int(at_risk or 0),
        int(sync[0]),
        int(sync[1]),
        float(sync[2] or 0),
    )
