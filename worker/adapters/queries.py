"""Read-side SQL for handles, the CLI and status: no state changes here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, String, Text, any_, bindparam, cast, exists, func, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from batchline.adapters import summaries
from batchline.domain.custom_ids import decode_custom_id
from batchline.domain.results import result_object
from batchline.domain.states import TERMINAL_BATCH_STATES, BatchState, RequestState
from batchline.models import Batch, Request, RequestBody, Result, ResultTotal


@dataclass(frozen=True)
class RequestView:
    id: str
    state: str
    idempotency_key: str | None
    batch_id: int | None
    attempts: int
    charged_attempts: int
    last_error: str | None
    tags: dict[str, Any] | None
    created_at: datetime
    finished_at: datetime | None


def request_params(session: Session, request_id: str) -> str | None:
    """The request body exactly as enqueued (JSON text)."""
    return session.scalar(select(RequestBody.params).where(RequestBody.request_id == request_id))


def request_view(session: Session, request_id: str) -> RequestView | None:
    row = session.get(Request, request_id)
    if row is None:
        return None
    return RequestView(
        row.id,
        row.state,
        row.idempotency_key,
        row.batch_id,
        row.attempts,
        row.charged_attempts,
        row.last_error,
        row.tags,
        row.created_at,
        row.finished_at,
    )


def pending_work(engine: Engine) -> tuple[bool, bool]:
    """(requests queued, batches or callbacks in flight), for beat to skip idle ticks.
    Each is an EXISTS on a partial or small index."""
    active = [s.value for s in BatchState if s not in TERMINAL_BATCH_STATES]
    queued = select(Request.id).where(Request.state == RequestState.QUEUED).limit(1)
    flying = select(Batch.id).where(Batch.state.in_(active)).limit(1)
    callbacks = (
        select(Request.id)
        .where(Request.on_result.is_not(None), Request.notified_at.is_(None))
        .where(Request.finished_at.is_not(None))
        .limit(1)
    )
    with engine.connect() as conn:
        row = conn.execute(select(exists(queued), exists(flying) | exists(callbacks))).one()
    return bool(row[0]), bool(row[1])


def find_request_id(session: Session, given: str) -> str | None:
    """The request a user means: its id, its idempotency key, or a custom_id it was
    sent under (the CLI's enqueue uses the line's custom_id as the key)."""
    if session.get(Request, given) is not None:
        return given
    by_key = request_id_for_key(session, given)
    if by_key is not None:
        return by_key
    found = request_ids_for_custom_id(session, given, 1)
    return found[0] if found else None


def request_ids_for_custom_id(session: Session, custom_id: str, limit: int) -> list[str]:
    """Requests whose results came back under `custom_id`, found by the results'
    request index. A batchline-shaped custom_id names its request. Any other is
    stored with a request only as a synchronous fallback's, which carries its
    request's id (ingestion drops other custom_ids as foreign, and keeps a
    result naming no request without one); so no lookup scans the results'
    (batch_id, custom_id) index, which took 45-100 ms at a million."""
    ref = decode_custom_id(custom_id, None)
    request_id = custom_id if ref is None else ref.request_id
    stmt = select(Result.request_id).where(
        Result.custom_id == custom_id, Result.request_id == request_id
    )
    return [r for r in session.scalars(stmt.limit(limit)) if r is not None]


def request_exists(session: Session, request_id: str) -> bool:
    return session.get(Request, request_id) is not None


def find_batch_id(session: Session, given: str) -> int | None:
    """The local batch a user means: its number, or the API's msgbatch_… id."""
    if given.isdigit():
        if len(given) > 18:
            return None
        return int(given) if session.get(Batch, int(given)) is not None else None
    return session.scalar(select(Batch.id).where(Batch.remote_id == given))


def request_id_for_key(session: Session, key: str | None) -> str | None:
    """The request enqueued under an idempotency key; None for no key or an unknown one."""
    if key is None:
        return None
    return session.scalar(select(Request.id).where(Request.idempotency_key == key))


def known_keys(session: Session, keys: list[str]) -> set[str]:
    """Which of these idempotency keys a request in SQL already has."""
    return set(
        session.scalars(select(Request.idempotency_key).where(Request.idempotency_key.in_(keys)))
    )


def final_result_line(session: Session, request_id: str) -> tuple[str, bytes | None] | None:
    """The latest non-duplicate result's type and line, as the API sent it, for a request."""
    row = session.execute(
        select(Result.result_type, Result.line)
        .where(Result.request_id == request_id, Result.duplicate.is_(False))
        .order_by(Result.id.desc())
        .limit(1)
    ).first()
    return None if row is None else (row[0], row[1])


def final_result_body(session: Session, request_id: str) -> tuple[str, dict[str, Any]] | None:
    """The latest non-duplicate result's type and `result` object for a request."""
    found = final_result_line(session, request_id)
    return None if found is None else (found[0], result_object(found[1], found[0]))


def requests_by_state(session: Session) -> dict[str, int]:
    """From the running totals: no scan of the requests."""
    return summaries.requests_by_state(session)


def batches_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(Batch.state, func.count()).group_by(Batch.state))
    return {state: int(n) for state, n in rows}


@dataclass(frozen=True)
class TokenTotals:
    results: int
    input_tokens: int
    output_tokens: int
    cache_write_tokens: int
    cache_read_tokens: int
    duplicates: int


def token_totals(session: Session) -> TokenTotals:
    kinds = summaries.by_kind(session)
    every = summaries.add(list(kinds.values()))
    duplicates = sum(t.results for k, t in kinds.items() if k.duplicate)
    return TokenTotals(
        every.results,
        every.input_tokens,
        every.output_tokens,
        every.cache_write_tokens,
        every.cache_read_tokens,
        duplicates,
    )


def results_by_type(session: Session) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kind, t in summaries.by_kind(session).items():
        if not kind.duplicate:
            counts[kind.result_type] = counts.get(kind.result_type, 0) + t.results
    return counts


# Results batchline could not take as the API sent them (error_type beside them).
BAD_RESULT_KINDS = ("malformed_result", "result_too_large", "result_refused")


def bad_results(session: Session) -> dict[str, int]:
    """Results of bad data by kind: malformed, too large, refused by the database,
    and `unknown_request` (a batchline custom_id naming no request in SQL)."""
    counts: dict[str, int] = {}
    unknown = 0
    for kind, t in summaries.by_kind(session).items():
        if kind.error_type in BAD_RESULT_KINDS:
            counts[kind.error_type] = counts.get(kind.error_type, 0) + t.results
        unknown += t.results if kind.orphan else 0
    counts["unknown_request"] = unknown
    return counts


IN_FLIGHT = ("prepared", "submitting", "unknown", "submitted", "ended")


def in_flight_batches(session: Session, limit: int = 50) -> list[Batch]:
    return list(
        session.scalars(
            select(Batch).where(Batch.state.in_(IN_FLIGHT)).order_by(Batch.id).limit(limit)
        )
    )


def list_batches(session: Session, state: str | None, limit: int) -> list[Batch]:
    stmt = select(Batch).order_by(Batch.id.desc()).limit(limit)
    if state is not None:
        stmt = stmt.where(Batch.state == state)
    return list(session.scalars(stmt))


def batch_members(batch_id: int) -> Any:
    """Ids of the requests whose results came from this batch, or that sit in it:
    a UNION of two index lookups (an OR of the two made PostgreSQL scan every request)."""
    settled = select(Result.request_id).where(
        Result.batch_id == batch_id, Result.duplicate.is_(False), Result.request_id.is_not(None)
    )
    return settled.union(select(Request.id).where(Request.batch_id == batch_id))


def _requests_among(session: Session, ids: Any) -> Any:
    """Requests whose id is one of the subquery's, each found by primary key. As
    `IN (subquery)`, PostgreSQL hashed every request (a seq scan: 0.8-1.3 s for
    a batch of 10,000 at a million); `= ANY(ARRAY(...))` can only probe."""
    if session.get_bind().dialect.name == "postgresql":
        return Request.id == any_(func.array(ids.scalar_subquery()))
    return Request.id.in_(ids)


def batch_request_states(session: Session, batch_id: int) -> dict[str, int]:
    """States of the requests whose results came from this batch, or that sit in it.
    Those in it are in_batch (a CHECK ties batch_id to that state): counted on the
    batch_id index. Only the others, named by the batch's results, are read one by
    one (so an in-flight batch reads no request; a settled one, one per result)."""
    inside = session.scalar(select(func.count()).where(Request.batch_id == batch_id)) or 0
    settled = select(Result.request_id).where(
        Result.batch_id == batch_id, Result.duplicate.is_(False), Result.request_id.is_not(None)
    )
    rows = session.execute(
        select(Request.state, func.count())
        .where(_requests_among(session, settled))
        .where(or_(Request.batch_id.is_(None), Request.batch_id != batch_id))
        .group_by(Request.state)
    )
    states = {state: int(n) for state, n in rows}
    if inside:
        states["in_batch"] = states.get("in_batch", 0) + int(inside)
    return states


def batch_requests(session: Session, batch_id: int, limit: int) -> list[tuple[str, str, int]]:
    """The first `limit` requests of a batch by id: id, state, attempts. The
    members' ids are sorted and cut to `limit` before any request is read."""
    members = batch_members(batch_id).subquery()
    first = select(members.c[0]).order_by(members.c[0]).limit(limit)
    rows = session.execute(
        select(Request.id, Request.state, Request.attempts)
        .where(_requests_among(session, first))
        .order_by(Request.id)
    )
    return [(r[0], r[1], int(r[2])) for r in rows]


def request_history(session: Session, request_id: str) -> list[Result]:
    return list(
        session.scalars(select(Result).where(Result.request_id == request_id).order_by(Result.id))
    )


def export_rows(
    session: Session, batch_id: int | None, state: str | None, chunk: int = 1_000
) -> Iterator[tuple[Request, Result | None]]:
    """Each request with its final (non-duplicate, latest) result, streamed."""
    latest = (
        select(Result.request_id, func.max(Result.id).label("result_id"))
        .where(Result.duplicate.is_(False))
        .group_by(Result.request_id)
        .subquery()
    )
    stmt = (
        select(Request, Result)
        .outerjoin(latest, latest.c.request_id == Request.id)
        .outerjoin(Result, Result.id == latest.c.result_id)
        .order_by(Request.created_at, Request.id)
        .execution_options(yield_per=chunk)
    )
    if state is not None:
        stmt = stmt.where(Request.state == state)
    if batch_id is not None:
        stmt = stmt.where(Result.batch_id == batch_id)
    for row in session.execute(stmt):
        yield row[0], row[1]


@dataclass(frozen=True)
class CacheStats:
    cache_write_tokens: int
    cache_read_tokens: int
    input_tokens: int

    @property
    def hit_rate(self) -> float:
        """Share of the batch's prompt tokens that were read from the cache."""
        total = self.cache_write_tokens + self.cache_read_tokens + self.input_tokens
        return self.cache_read_tokens / total if total else 0.0


def batch_cache_stats(session: Session, batch_id: int) -> CacheStats:
    found = summaries.result_totals(session, ResultTotal.batch_id == batch_id)
    return CacheStats(found.cache_write_tokens, found.cache_read_tokens, found.input_tokens)


RESULTS_KEPT = timedelta(days=29)


def results_expiring(session: Session, now: datetime, margin: timedelta) -> list[Batch]:
    """Ended batches not fully ingested whose 29-day results window closes within `margin`."""
    return list(
        session.scalars(
            select(Batch).where(
                Batch.state == "ended",
                Batch.remote_created_at.is_not(None),
                Batch.remote_created_at < now + margin - RESULTS_KEPT,
            )
        )
    )


# A tag value typed as a JSON number or boolean may be stored as one.
_JSON_SCALAR = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?|true|false")


def tag_is(session: Session, name: str, value: str) -> Any:
    """Tag `name` equals `value` as typed: the string, or the number or boolean
    it spells (`n=7` finds 7 and "7"; tags hold only scalars). On PostgreSQL a
    containment test (`tags @> {name: value}`), which the GIN index
    ix_requests_tags serves; it compares numbers as numbers (7.0 is 7), where
    text comparison did not. SQLite compares the value's text."""
    if session.get_bind().dialect.name != "postgresql":
        return Request.tags[name].as_string() == value
    # Rendered into the statement, not bound: with a parameter, a prepared
    # statement's generic plan cannot see how common the value is, and walked
    # every request for a rare one (3 s at a million).
    docs = [orjson.dumps({name: value}).decode()]
    if _JSON_SCALAR.fullmatch(value):
        # Parsed by PostgreSQL from the text, so a number keeps every digit typed.
        docs.append(orjson.dumps({name: None}).decode()[:-5] + value + "}")
    return or_(
        *(
            Request.tags.op("@>")(cast(bindparam(None, doc, String, literal_execute=True), JSONB))
            for doc in docs
        )
    )


def request_ids_by_tag(session: Session, name: str, value: str, limit: int = 1_000) -> list[str]:
    """Requests whose string tag `name` equals `value`, oldest first."""
    return list(
        session.scalars(
            select(Request.id)
            .where(tag_is(session, name, value))
            .order_by(Request.created_at)
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class Settled:
    """One recent result with its request: a sample row for the charts."""

    enqueued_at: datetime
    finished_at: datetime | None
    prefix_hash: str | None
    tags: dict[str, Any] | None
    stats: CacheStats


def latest_settled(session: Session, limit: int) -> list[Settled]:
    """The latest `limit` results (by id: the primary key's order, no sort) joined
    to their requests. The limit is inside the subquery, so the join is `limit`
    primary-key probes (a nested loop); joined before the limit, PostgreSQL hashed
    every request (1.9 s at a million)."""
    latest = (
        select(
            Result.request_id,
            (Result.cache_write_5m_tokens + Result.cache_write_1h_tokens).label("written"),
            Result.cache_read_tokens,
            Result.input_tokens,
        )
        .where(Result.duplicate.is_(False), Result.request_id.is_not(None))
        .order_by(Result.id.desc())
        .limit(limit)
        .subquery()
    )
    # Tags as text, parsed here with orjson: the driver's json.loads of 2,000
    # documents cost more than the query.
    rows = session.execute(
        select(
            Request.enqueued_at,
            Request.finished_at,
            Request.prefix_hash,
            cast(Request.tags, Text),
            latest.c.written,
            latest.c.cache_read_tokens,
            latest.c.input_tokens,
        ).join_from(latest, Request, Request.id == latest.c.request_id)
    )
    return [
        Settled(
            r[0],
            r[1],
            r[2],
            None if r[3] is None else orjson.loads(r[3]),
            CacheStats(int(r[4]), int(r[5]), int(r[6])),
        )
        for r in rows
    ]


def newest_request_ids_by_tag(session: Session, name: str, value: str, limit: int) -> list[str]:
    """Requests whose tag `name` equals `value`, newest first: ids begin with their
    enqueue time, so for a common tag the primary key walks back from the newest and
    stops at `limit`; for a rare one (or one no request has) PostgreSQL reads the
    tags index instead. (Its estimate of `@>` comes from the column's statistics;
    a second test beside it, as `->>` was, made it guess a rare tag every time.)"""
    return list(
        session.scalars(
            select(Request.id)
            .where(tag_is(session, name, value))
            .order_by(Request.id.desc())
            .limit(limit)
        )
    )
