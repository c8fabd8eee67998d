"""All SQL that moves requests and batches through the pipeline.

Every state change is a guarded update (`WHERE state = :expected`) whose row
count says whether this caller won; a caller that lost simply does nothing.
That is what makes a duplicated Celery message, a second beat or a re-run
ingestion harmless.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    any_,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from batchline.adapters import bulk
from batchline.adapters.batch_api import RemoteBatch
from batchline.domain.custom_ids import (
    RequestRef,
    check_deployment,
    encode_custom_id,
    new_deployment_name,
)
from batchline.domain.prefix import with_hour_breakpoints
from batchline.domain.states import BatchState, RequestState
from batchline.models import Batch, CachePrimer, Control, Request, Result

ID_CHUNK = 5_000
PAUSE_CONTROL = "submission_paused"
# pg_advisory_xact_lock key serialising the count of running downloads.
INGEST_SLOTS_LOCK = 0x62_6C_69_6E_67  # "bling"
DEPLOYMENT_CONTROL = "deployment"


def _changed(result: Any) -> int:
    """Rows an UPDATE matched: the caller won its guarded transition iff this is 1."""
    return int(result.rowcount)


def chunks(items: Sequence[Any], size: int = ID_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _among(session: Session, column: Any, values: Sequence[str]) -> Any:
    """`column IN values`. On PostgreSQL as `= ANY(...)` over one text parameter:
    an IN list of thousands of parameters makes psycopg parse a query that long,
    and an array parameter is dumped element by element in Python."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(func.string_to_array(_joined(values), ","))
    return column.in_(values)


def _joined(values: Sequence[Any]) -> str:
    text_values = [str(v) for v in values]
    # Ids and custom_ids never hold a comma (see batchline.domain.custom_ids).
    if any("," in v for v in text_values):
        raise ValueError("a comma in an id cannot be passed as a joined list")
    return ",".join(text_values)


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


# --- intake -----------------------------------------------------------------


def insert_requests(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert new requests; ids (and idempotency keys) already present are skipped."""
    table = cast(Table, Request.__table__)
    if rows and session.get_bind().dialect.name == "postgresql" and _all_new(session, rows):
        # The common case, checked first: COPY straight into the table, half the
        # writes of staging. Should a concurrent intake insert one of these rows
        # meanwhile, the savepoint rolls back and the skipping path below runs.
        try:
            with session.begin_nested():
                bulk.insert_new(session, table, rows)
            return len(rows)
        except bulk.UNIQUE_VIOLATIONS:
            pass
    return bulk.insert_missing(session, table, rows)


def _all_new(session: Session, rows: Sequence[dict[str, Any]]) -> bool:
    """No row's id or idempotency key is stored yet, nor repeated among the rows."""
    ids = [row["id"] for row in rows]
    keys = [row["idempotency_key"] for row in rows if row["idempotency_key"] is not None]
    if len(set(ids)) < len(ids) or len(set(keys)) < len(keys):
        return False
    clash = _among(session, Request.id, ids)
    if keys:
        clash = or_(clash, Request.idempotency_key.in_(keys))
    return session.scalar(select(Request.id).where(clash).limit(1)) is None


def existing_request_ids(session: Session, request_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for part in chunks(list(request_ids)):
        found.update(session.scalars(select(Request.id).where(_among(session, Request.id, part))))
    return found


def request_id_for_key(session: Session, key: str | None) -> str | None:
    if key is None:
        return None
    return session.scalar(select(Request.id).where(Request.idempotency_key == key))


# --- assembling batches -----------------------------------------------------


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
        moved += _changed(
            session.execute(
                update(Request)
                # Not indexable on state, for the reason given in _still_in_batch.
                .where(_among(session, Request.id, part), Request.state + "" == RequestState.QUEUED)
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


# --- submitting ---------------------------------------------------------------


def batches_ready_to_submit(session: Session, now: datetime, limit: int = 100) -> list[int]:
    stmt = (
        select(Batch.id)
        .where(
            Batch.state == BatchState.PREPARED,
            or_(Batch.next_submit_at.is_(None), Batch.next_submit_at <= now),
        )
        .order_by(Batch.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def begin_submission(session: Session, batch_id: int, now: datetime) -> bool:
    """PREPARED -> SUBMITTING, committed before create is called (the intent)."""
    # Guarded: of two workers handed the same batch, exactly one calls create.
    result = session.execute(
        update(Batch)
        .where(
            Batch.id == batch_id,
            Batch.state == BatchState.PREPARED,
            or_(Batch.next_submit_at.is_(None), Batch.next_submit_at <= now),
        )
        .values(
            state=BatchState.SUBMITTING,
            submit_started_at=now,
            submit_tries=Batch.submit_tries + 1,
            updated_at=now,
        )
    )
    return _changed(result) == 1


def deployment_name(session: Session, configured: str, now: datetime) -> str:
    """The name in this deployment's custom_ids: the setting, or the one its database keeps."""
    if configured:
        return configured
    stored = session.get(Control, DEPLOYMENT_CONTROL)
    if stored is None or not stored.value:
        stmt = _insert(session, Control).values(
            name=DEPLOYMENT_CONTROL, value=new_deployment_name(), updated_at=now
        )
        # Two workers naming it at once: the first insert wins, both read it back.
        session.execute(stmt.on_conflict_do_nothing(index_elements=[Control.name]))
        session.expire_all()
        stored = session.get(Control, DEPLOYMENT_CONTROL)
    assert stored is not None and stored.value
    return check_deployment(stored.value)


def batch_betas(conn: Connection | Session, batch_id: int) -> list[str]:
    """The anthropic-beta names a batch is created with (its requests all share them)."""
    stmt = select(Request.betas).where(Request.batch_id == batch_id).limit(1)
    joined = conn.execute(stmt).scalar()
    return joined.split(",") if joined else []


def iter_batch_body(
    conn: Connection, batch_id: int, deployment: str = "", fetch: int = 1_000
) -> Iterator[bytes]:
    """The create body for a batch, streamed from SQL a slice at a time."""
    stmt = (
        select(Request.id, Request.attempts, Request.params, Request.cache_ttl_1h)
        .where(Request.batch_id == batch_id, Request.state == RequestState.IN_BATCH)
        .order_by(Request.id)
        .execution_options(yield_per=fetch)
    )
    yield b'{"requests":['
    first = True
    for rows in conn.execute(stmt).partitions():
        parts = []
        for request_id, attempt, params, ttl_1h in rows:
            custom_id = encode_custom_id(request_id, attempt, deployment)
            if ttl_1h:
                params = orjson.dumps(with_hour_breakpoints(orjson.loads(params))).decode()
            parts.append(f'{{"custom_id":"{custom_id}","params":{params}}}')
        text = ",".join(parts)
        yield (text if first else "," + text).encode()
        first = False
    yield b"]}"


def _move_batch(session: Session, batch_id: int, src: Iterable[BatchState], **values: Any) -> bool:
    result = session.execute(
        update(Batch).where(Batch.id == batch_id, Batch.state.in_(list(src))).values(**values)
    )
    return _changed(result) == 1


def remote_fields(remote: RemoteBatch) -> dict[str, Any]:
    return {
        "processing_status": remote.processing_status,
        "count_processing": remote.processing,
        "count_succeeded": remote.succeeded,
        "count_errored": remote.errored,
        "count_canceled": remote.canceled,
        "count_expired": remote.expired,
        "remote_created_at": remote.created_at,
        "remote_expires_at": remote.expires_at,
        "remote_ended_at": remote.ended_at,
        "cancel_initiated_at": remote.cancel_initiated_at,
        "archived_at": remote.archived_at,
    }


def record_submission(
    session: Session, batch_id: int, remote: RemoteBatch, now: datetime, next_poll: datetime
) -> bool:
    return _move_batch(
        session,
        batch_id,
        [BatchState.SUBMITTING],
        state=BatchState.SUBMITTED,
        remote_id=remote.id,
        submitted_at=now,
        next_poll_at=next_poll,
        updated_at=now,
        error=None,
        **remote_fields(remote),
    )


def record_create_not_accepted(
    session: Session, batch_id: int, error: str, retry_at: datetime, now: datetime
) -> bool:
    return _move_batch(
        session,
        batch_id,
        [BatchState.SUBMITTING],
        state=BatchState.PREPARED,
        next_submit_at=retry_at,
        error=error,
        updated_at=now,
    )


def record_outcome_unknown(session: Session, batch_id: int, error: str, now: datetime) -> bool:
    return _move_batch(
        session,
        batch_id,
        [BatchState.SUBMITTING],
        state=BatchState.UNKNOWN,
        error=error,
        updated_at=now,
    )


def refuse_batch(session: Session, batch_id: int, error: str, now: datetime) -> bool:
    """The API will never take this batch: its requests fail with the reason."""
    if not _move_batch(
        session,
        batch_id,
        [BatchState.SUBMITTING],
        state=BatchState.REFUSED,
        error=error,
        updated_at=now,
    ):
        return False
    session.execute(
        update(Request)
        .where(Request.batch_id == batch_id, Request.state == RequestState.IN_BATCH)
        .values(
            state=RequestState.FAILED,
            batch_id=None,
            charged_attempts=Request.charged_attempts + 1,
            last_error=f"batch refused: {error}",
            finished_at=now,
            updated_at=now,
        )
    )
    return True


def release_batch(
    session: Session, batch_id: int, src: Iterable[BatchState], reason: str, now: datetime
) -> bool:
    """The batch was never created remotely: its requests go back to the queue."""
    if not _move_batch(
        session, batch_id, src, state=BatchState.RELEASED, error=reason, updated_at=now
    ):
        return False
    session.execute(
        update(Request)
        .where(Request.batch_id == batch_id, Request.state == RequestState.IN_BATCH)
        .values(state=RequestState.QUEUED, batch_id=None, updated_at=now)
    )
    return True


def submission_paused(session: Session) -> str | None:
    control = session.get(Control, PAUSE_CONTROL)
    return control.value if control is not None else None


def pause_submission(session: Session, reason: str, now: datetime) -> None:
    stmt = _insert(session, Control).values(name=PAUSE_CONTROL, value=reason, updated_at=now)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[Control.name], set_={"value": reason, "updated_at": now}
        )
    )


def resume_submission(session: Session) -> bool:
    control = session.get(Control, PAUSE_CONTROL)
    if control is None:
        return False
    session.delete(control)
    return True


# --- polling ------------------------------------------------------------------


def lease_due_polls(session: Session, now: datetime, lease: timedelta, limit: int) -> list[int]:
    """Batches due a poll, each pushed back by `lease` so the next sweep skips them."""
    due = list(
        session.scalars(
            select(Batch.id)
            .where(Batch.state == BatchState.SUBMITTED, Batch.next_poll_at <= now)
            .order_by(Batch.next_poll_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if due:
        session.execute(update(Batch).where(Batch.id.in_(due)).values(next_poll_at=now + lease))
    return due


def record_poll(
    session: Session, batch_id: int, remote: RemoteBatch, now: datetime, next_poll: datetime
) -> bool:
    """Store what the poll saw; SUBMITTED -> ENDED once the remote batch ended."""
    values: dict[str, Any] = {**remote_fields(remote), "updated_at": now}
    if remote.ended:
        values["state"] = BatchState.ENDED
    else:
        values["next_poll_at"] = next_poll
    return _move_batch(session, batch_id, [BatchState.SUBMITTED], **values)


def mark_gone(session: Session, batch_id: int, error: str, now: datetime) -> bool:
    """SUBMITTED -> ENDED for a batch the API no longer knows; ingestion settles the rest."""
    return _move_batch(
        session,
        batch_id,
        [BatchState.SUBMITTED],
        state=BatchState.ENDED,
        error=error,
        processing_status="ended",
        updated_at=now,
    )


def get_batch(session: Session, batch_id: int) -> Batch | None:
    return session.get(Batch, batch_id)


def request_batch_cancel(session: Session, batch_id: int, now: datetime) -> bool:
    result = session.execute(
        update(Batch)
        .where(
            Batch.id == batch_id,
            Batch.state.in_(
                [
                    BatchState.PREPARED,
                    BatchState.SUBMITTING,
                    BatchState.SUBMITTED,
                    BatchState.UNKNOWN,
                ]
            ),
        )
        .values(cancel_requested=True, next_poll_at=now, updated_at=now)
    )
    return _changed(result) == 1


def cancel_queued_request(session: Session, request_id: str, now: datetime) -> bool:
    result = session.execute(
        update(Request)
        .where(Request.id == request_id, Request.state == RequestState.QUEUED)
        .values(
            state=RequestState.CANCELED,
            finished_at=now,
            updated_at=now,
            last_error="canceled before submission",
        )
    )
    return _changed(result) == 1


# --- ingestion ----------------------------------------------------------------


def batches_to_ingest(session: Session, now: datetime, limit: int = 100) -> list[int]:
    stmt = (
        select(Batch.id)
        .where(
            Batch.state == BatchState.ENDED,
            or_(Batch.lease_until.is_(None), Batch.lease_until < now),
        )
        .order_by(Batch.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


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
        half = (until - now) / 2
        running = session.scalar(
            select(func.count()).where(
                Batch.state == BatchState.ENDED, Batch.lease_until > now + half
            )
        )
        if (running or 0) >= slots:
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
    return _changed(result) == 1


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
    return _changed(result) == 1


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
            ).where(_among(session, Request.id, part))
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
                Result.batch_id == batch_id, _among(session, Result.custom_id, ids)
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
            .where(Result.batch_id == batch_id, _among(session, Result.custom_id, part))
            .values(duplicate=True)
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
    values: dict[str, Any] = {
        "state": state,
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
        stmt = (
            update(Request)
            .where(_among(session, Request.id, part), *guards)
            .values(**values)
            .returning(Request.id)
        )
        moved.extend(session.scalars(stmt))
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
    return (Request.state + "" == RequestState.IN_BATCH, Request.batch_id + 0 == batch_id)


def finish_ingestion(session: Session, batch_id: int, now: datetime) -> bool:
    return _move_batch(
        session,
        batch_id,
        [BatchState.ENDED],
        state=BatchState.INGESTED,
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


# --- reconciling --------------------------------------------------------------


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
                    _among(session, Request.id, part),
                    Request.attempts == attempt,
                    Request.state == RequestState.IN_BATCH,
                    Request.batch_id.in_(lost),
                )
                .values(batch_id=batch_id)
            )
            moved += _changed(result)
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


def adopt_remote(session: Session, batch_id: int, remote: RemoteBatch, now: datetime) -> bool:
    """UNKNOWN -> SUBMITTED: the batch whose create answer was lost, found remotely."""
    return _move_batch(
        session,
        batch_id,
        [BatchState.UNKNOWN],
        state=BatchState.SUBMITTED,
        remote_id=remote.id,
        origin="adopted",
        submitted_at=now,
        next_poll_at=now,
        updated_at=now,
        **remote_fields(remote),
    )


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


def dispose(engine: Engine) -> None:
    engine.dispose()
