"""Intake: move enqueued requests from the Redis stream into SQL.

No entry can hold back another: an entry that cannot be read is dead-lettered
with the reason, and should the database refuse a request's row, the chunk is
split until that request is alone (see services.isolate); it alone is
dead-lettered, and every other request of the chunk is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson
from sqlalchemy.orm import Session

from batchline.adapters import queries
from batchline.adapters.intake_entries import (
    IntakeEntry,
    StreamEntry,
    decode_entries,
    single,
    split_bundle,
)
from batchline.adapters.sql import intake as intake_sql
from batchline.domain.deadlines import DeadlineDefaults, deadline_at
from batchline.domain.prefix import prefix_hash
from batchline.domain.scheduling import check_priority, share_key
from batchline.domain.states import RequestState
from batchline.domain.validation import check_betas
from batchline.services.assemble import full_batch_queued
from batchline.services.context import Pipeline
from batchline.services.isolate import one_line, store_isolating
from batchline.services.read_ahead import read_ahead

log = logging.getLogger("batchline.intake")
# What decode_entries raises for an entry enqueue did not write (bad fields,
# JSON, ids, meta values): the entry's own fault, dead-lettered at once.
UNREADABLE = ValueError
NO_DEFAULTS = DeadlineDefaults()


def run_intake(
    pipeline: Pipeline,
    consumer: str,
    max_rounds: int = 100,
    when_full: Callable[[], object] | None = None,
) -> int:
    """Move what waits in the stream into SQL, a chunk per transaction.

    The next chunk is read from Redis and parsed in a thread while the current
    one is written (services.read_ahead): the two took turns, and the database's
    share of a chunk (COPY and commit) was about a third of intake's time
    (bench/README.md). Entries are acked only after their chunk commits, as before.

    After each chunk is committed (and acked), `when_full` is called if a full
    batch is queued, so it is cut and sent while the rest is still taken in,
    not at the end of this run or at the next tick."""
    moved = 0
    for chunk in read_ahead(_raw_chunks(pipeline, consumer, max_rounds), partial(_parse, pipeline)):
        moved += _store_chunk(pipeline, chunk)
        if when_full is not None and full_batch_queued(pipeline):
            log.info("intake: a full batch is queued, cutting it now")
            when_full()
    return moved


def _raw_chunks(pipeline: Pipeline, consumer: str, max_rounds: int) -> Iterator[list[StreamEntry]]:
    for _ in range(max_rounds):
        raw = pipeline.intake.read(
            consumer,
            pipeline.settings.intake_chunk,
            int(pipeline.settings.intake_reclaim_seconds * 1000),
        )
        if not raw:
            return
        yield raw


Found = tuple[StreamEntry, IntakeEntry, dict[str, Any]]


@dataclass
class _Chunk:
    """One read of the stream, parsed: the rows to store and what cannot be read."""

    raw: list[StreamEntry]
    now: datetime
    found: list[Found] = field(default_factory=list)
    buried: list[tuple[StreamEntry, str]] = field(default_factory=list)
    # Requests that decoded but whose row could not be made: see _judge_failed_rows.
    failed_rows: list[tuple[StreamEntry, IntakeEntry, Exception]] = field(default_factory=list)


def _parse(pipeline: Pipeline, raw: list[StreamEntry]) -> _Chunk:
    chunk = _Chunk(raw, pipeline.clock())
    settings = pipeline.settings
    # The settings' share of each row, worked out once a chunk, not once a request.
    row = partial(
        request_row,
        default_max_attempts=settings.max_attempts,
        now=chunk.now,
        share_tag=settings.share_tag,
        deadlines=settings.deadline_defaults(),
    )
    for entry in raw:
        _read(entry, row, chunk)
    _judge_failed_rows(pipeline, chunk)
    return chunk


def _judge_failed_rows(pipeline: Pipeline, chunk: _Chunk) -> None:
    """Requests that decoded (their values passed enqueue's checks) yet made no row.

    Beside requests that made theirs, each is a poison entry the checks missed:
    dead-lettered alone, with its traceback logged, so it blocks no one. With
    none made since the last that was, two or more such failures in a row
    (in one chunk, or across chunks: a quiet deployment's chunks hold one
    request) are far likelier this code's fault (a bad deploy) than every
    entry's: the chunk is left unacknowledged and the error raised, so intake
    stops loudly instead of dead-lettering every request it reads. The first
    such failure is dead-lettered: alone it cannot be told from poison, and
    must not stop intake for good."""
    failed = chunk.failed_rows
    if chunk.found:
        pipeline.rows_failed_in_a_row = 0
    elif failed:
        pipeline.rows_failed_in_a_row += len(failed)
        if pipeline.rows_failed_in_a_row > 1:
            raise failed[0][2]
    for entry, request, exc in failed:
        log.error(
            "intake: no row for request %s, dead-lettered",
            request.request_id,
            exc_info=exc,
            extra={"request_id": request.request_id},
        )
        reason = f"unreadable: {type(exc).__name__}: {one_line(exc)}"
        chunk.buried.append((single(entry, request), reason))


def _store_chunk(pipeline: Pipeline, chunk: _Chunk) -> int:
    refusals: list[str] = []

    def refused(item: Found, exc: Exception) -> None:
        entry, request, _ = item
        refusals.append(request.request_id)
        log.error(
            "request %s refused by the database, dead-lettered: %s",
            request.request_id,
            one_line(exc),
            extra={"request_id": request.request_id},
        )
        chunk.buried.append((single(entry, request), f"refused by the database: {one_line(exc)}"))

    now = chunk.now
    store_isolating(
        chunk.found, lambda part: _store(pipeline, [row for *_, row in part], now), refused
    )
    # Only after the commits: an entry acked before them would be lost by a crash
    # here. The dead letters are written first for the same reason.
    pipeline.intake.bury(chunk.buried)
    pipeline.intake.ack(chunk.raw)
    return len(chunk.found) - len(refusals)


def _read(entry: StreamEntry, row: Callable[[IntakeEntry], dict[str, Any]], chunk: _Chunk) -> None:
    """The entry's requests into `chunk.found` (with their `row`); what cannot be
    decoded into `chunk.buried`, what decoded but made no row into `chunk.failed_rows`."""
    try:
        requests = decode_entries(entry)
    except UNREADABLE as exc:
        parts = split_bundle(entry)
        if not parts:
            log.error("intake entry unreadable, dead-lettered: %s", exc)
            chunk.buried.append((entry, f"unreadable: {exc}"))
            return
        # A bundle is read again request by request: only the bad ones are buried.
        requests = []
        for part in parts:
            try:
                requests += decode_entries(part)
            except UNREADABLE as part_exc:
                log.error("bundled request unreadable, dead-lettered: %s", part_exc)
                chunk.buried.append((part, f"unreadable: {part_exc}"))
    for request in requests:
        try:
            chunk.found.append((entry, request, row(request)))
        except Exception as exc:  # judged with the whole chunk: a bad entry, or a bug
            chunk.failed_rows.append((entry, request, exc))


def _store(pipeline: Pipeline, rows: list[dict[str, Any]], now: datetime) -> None:
    with pipeline.sessions.begin() as session:
        inserted = intake_sql.insert_requests(session, rows)
        if inserted < len(rows):
            _settle_key_reuse(session, rows, now)


def _settle_key_reuse(session: Session, rows: list[dict[str, Any]], now: datetime) -> None:
    """Rows skipped for their key, not their id, reused a key whose Redis entry had
    expired: record them canceled, naming the first request, so their handles end."""
    present = intake_sql.existing_request_ids(session, [r["id"] for r in rows])
    for row in rows:
        if row["id"] in present:
            continue  # a redelivered entry: already in SQL, nothing to do
        first = queries.request_id_for_key(session, row["idempotency_key"])
        duplicate = {
            **row,
            "idempotency_key": None,
            "state": RequestState.CANCELED,
            "finished_at": now,
            "last_error": f"idempotency key {row['idempotency_key']!r} already used by "
            f"request {first}",
        }
        intake_sql.insert_requests(session, [duplicate])
        log.warning(
            "request %s reused key of %s: canceled",
            row["id"],
            first,
            extra={"request_id": row["id"]},
        )


def request_row(
    entry: IntakeEntry,
    default_max_attempts: int,
    now: datetime,
    share_tag: str = "",
    deadlines: DeadlineDefaults = NO_DEFAULTS,
) -> dict[str, Any]:
    """The queued `requests` row of an entry (durable enqueue writes it directly)."""
    meta = entry.meta
    params = entry.params.decode("utf-8")
    model = meta.get("model")
    enqueued = datetime.fromtimestamp(float(meta.get("t", now.timestamp())), UTC)
    return {
        "id": entry.request_id,
        "idempotency_key": meta.get("key"),
        "state": RequestState.QUEUED,
        "params": params,
        "params_bytes": len(entry.params),
        "model": model if isinstance(model, str) else "",
        "tags": meta.get("tags") or None,
        "on_result": meta.get("on_result"),
        # Normalised (sorted, unique) so equal sets group into one batch.
        "betas": ",".join(check_betas(meta.get("betas"))) or None,
        "batch_id": None,
        "attempts": 0,
        "charged_attempts": 0,
        "max_attempts": int(meta.get("max_attempts") or default_max_attempts),
        "prefix_hash": _prefix_hash(entry.params),
        # None is the default; the value itself was checked with the meta (decode_entries).
        "priority": check_priority(meta.get("priority")),
        # Fixed at intake: changing BATCHLINE_SHARE_TAG applies to requests taken in after.
        "share_key": share_key(meta.get("tags"), share_tag),
        "cache_ttl_1h": False,
        "enqueued_at": enqueued,
        "deadline_at": deadline_at(meta.get("deadline"), meta.get("tags"), enqueued, deadlines),
        "created_at": now,
        "updated_at": now,
    }


def _prefix_hash(params: bytes) -> str | None:
    # Most requests have no breakpoint: skip the parse for them.
    if b'"cache_control"' not in params:
        return None
    return prefix_hash(orjson.loads(params))
