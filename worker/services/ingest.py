"""Ingestion: stream an ended batch's results into SQL and settle its requests.

Results are read as raw bytes and written a chunk per transaction, so memory
stays flat however large the batch. Running it twice changes nothing: result
rows are insert-if-absent, and only a newly inserted row moves its request.

Nothing from outside can wedge a batch or a worker: a line is kept as the API's
exact bytes (any valid JSON), a line over BATCHLINE_MAX_RESULT_LINE_BYTES is
skipped and its request failed, a chunk the database refuses is split until the
refused result is alone (services.isolate), and a whole download has a
deadline. The lease is renewed by time while bytes arrive; a download that
finds its lease taken stops, so one batch is downloaded by one worker at a time,
and at most BATCHLINE_INGEST_CONCURRENCY batches are downloaded at once.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from batchline.adapters.batch_api import ApiUnavailable, RemoteBatchGone
from batchline.adapters.bulk import DATA_REFUSALS
from batchline.adapters.sql import controls as controls_sql
from batchline.adapters.sql import ingest as ingest_sql
from batchline.adapters.sql import intake as intake_sql
from batchline.adapters.sql import reconcile as reconcile_sql
from batchline.adapters.sql import rows as rows_sql
from batchline.domain.cost import PriceTable
from batchline.domain.custom_ids import RequestRef, decode_custom_id
from batchline.domain.jsonl import Overlong, iter_lines
from batchline.domain.results import (
    ParsedResult,
    UnreadableLine,
    parse_line,
    parse_overlong,
    refused,
)
from batchline.domain.retry import decide
from batchline.domain.states import TERMINAL_REQUEST_STATES, RequestState
from batchline.prices import load_prices
from batchline.services.context import Pipeline
from batchline.services.ingest_lease import DeadlinePassed, DownloadStopped, IngestLease
from batchline.services.isolate import one_line, store_isolating
from batchline.services.read_ahead import read_ahead

log = logging.getLogger("batchline.ingest")

# A chunk of lines is also cut at this many bytes, so long lines cannot pile up.
CHUNK_BYTES = 32 << 20

Item = tuple[ParsedResult, RequestRef]


@dataclass
class IngestReport:
    batch_id: int
    lines: int = 0
    new_results: int = 0
    duplicates: int = 0
    unreadable: int = 0
    foreign: int = 0
    # Batchline-shaped custom_ids naming no request in SQL: stored without one, not settled.
    unknown_requests: int = 0
    # Results the database refused even as a failure: their requests go round again.
    unstorable: int = 0
    settled: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    requeued_missing: int = 0

    def add(self, other: IngestReport) -> None:
        self.new_results += other.new_results
        self.duplicates += other.duplicates
        self.foreign += other.foreign
        self.unknown_requests += other.unknown_requests
        for state, n in other.settled.items():
            self.settled[state] += n


def ingest_batch(pipeline: Pipeline, batch_id: int) -> IngestReport | None:
    """Ingest one ended batch; None when another worker holds it, it is done, no
    download slot is free, or the download stopped early (the next sweep goes on)."""
    taken = IngestLease.take(pipeline, batch_id)
    if taken is None:
        return None
    lease, remote_id = taken
    owner = _owner(pipeline, batch_id)
    report = IngestReport(batch_id)
    settings = pipeline.settings
    deadline = time.monotonic() + settings.ingest_deadline_seconds
    try:
        with pipeline.api.results(remote_id) as chunks:
            lines = iter_lines(_watched(chunks, lease, deadline), settings.max_result_line_bytes)
            limit = settings.max_result_line_bytes

            def parse(part: list[bytes | Overlong]) -> list[Item]:
                report.lines += len(part)
                return _parse(part, report, limit, owner)

            # The next chunk is read and parsed while this one is written.
            chunked = _batched(lines, settings.ingest_chunk, CHUNK_BYTES)
            for parsed in read_ahead(chunked, parse):
                _store_chunk(pipeline, batch_id, parsed, report, owner)
                lease.keep()
    except ApiUnavailable:
        # Give the batch back at once, so the next sweep retries without waiting out the lease.
        lease.release()
        raise
    except RemoteBatchGone as exc:
        # Deleted, or archived after 29 days: what was not read goes round again.
        log.error(
            "batch %d (%s) results are gone: %s",
            batch_id,
            remote_id,
            exc,
            extra={"batch_id": batch_id, "remote_id": remote_id},
        )
    except DownloadStopped as exc:
        # What was stored stays stored; the next download skips it.
        log.error(
            "batch %d (%s) download stopped after %d lines: %s",
            batch_id,
            remote_id,
            report.lines,
            exc,
            extra={"batch_id": batch_id, "remote_id": remote_id},
        )
        if isinstance(exc, DeadlinePassed):
            lease.back_off()
        return None
    _finish(pipeline, batch_id, report, owner)
    log.info(
        "batch %d (%s) ingested: %d lines, %d new, %d duplicate, %d unreadable, "
        "%d for unknown requests, settled %s",
        batch_id,
        remote_id,
        report.lines,
        report.new_results,
        report.duplicates,
        report.unreadable,
        report.unknown_requests,
        dict(report.settled),
    )
    return report


def _watched(chunks: Iterable[bytes], lease: IngestLease, deadline: float) -> Iterator[bytes]:
    """The stream's bytes as they come, checking the deadline and keeping the lease
    at every read: a stream that trickles still reaches both in time."""
    for chunk in chunks:
        if time.monotonic() > deadline:
            raise DeadlinePassed("the download passed BATCHLINE_INGEST_DEADLINE_SECONDS")
        lease.keep()
        yield chunk


def _batched(
    lines: Iterator[bytes | Overlong], size: int, max_bytes: int
) -> Iterator[list[bytes | Overlong]]:
    chunk: list[bytes | Overlong] = []
    held = 0
    for line in lines:
        chunk.append(line)
        held += len(line) if isinstance(line, bytes) else len(line.head)
        if len(chunk) >= size or held >= max_bytes:
            yield chunk
            chunk, held = [], 0
    if chunk:
        yield chunk


@dataclass(frozen=True)
class Owner:
    """Whose results these are: this deployment's name, and whether it planned the
    batch (a batch the reconciler found must prove with its custom_ids whose it is)."""

    deployment: str
    planned: bool


def _owner(pipeline: Pipeline, batch_id: int) -> Owner:
    with pipeline.sessions.begin() as session:
        batch = rows_sql.get_batch(session, batch_id)
        assert batch is not None
        name = controls_sql.deployment_name(session, pipeline.settings.deployment, pipeline.clock())
        return Owner(name, planned=batch.origin == "planned")


def _store_chunk(
    pipeline: Pipeline, batch_id: int, parsed: list[Item], report: IngestReport, owner: Owner
) -> None:
    def one_refused(item: Item, exc: Exception) -> None:
        _store_refused(pipeline, batch_id, item, exc, report, owner)

    store_isolating(
        parsed, lambda part: _store(pipeline, batch_id, part, report, owner), one_refused
    )


def _store(
    pipeline: Pipeline, batch_id: int, parsed: Sequence[Item], report: IngestReport, owner: Owner
) -> None:
    """Store and settle one part in one transaction; counted only once committed."""
    now = pipeline.clock()
    tally = IngestReport(batch_id)
    with pipeline.sessions.begin() as session:
        if not owner.planned:
            parsed = _ours(session, parsed, tally)
        prices = load_prices()
        rows = [_result_row(batch_id, p, ref, now, prices) for p, ref in parsed]
        new_ids = ingest_sql.insert_results(session, batch_id, rows)
        fresh = [(p, ref) for p, ref in parsed if p.custom_id in new_ids]
        tally.new_results += len(fresh)
        if not owner.planned:
            # The evidence: these results name these requests, so this is their batch.
            reconcile_sql.claim_from_unknown(session, batch_id, [ref for _, ref in fresh])
        settled = _settle(pipeline, session, batch_id, fresh, tally, now)
    report.add(tally)
    # After the commit: waiters are woken only for what is durable.
    pipeline.notifier.settled(settled)


def _store_refused(
    pipeline: Pipeline,
    batch_id: int,
    item: Item,
    exc: Exception,
    report: IngestReport,
    owner: Owner,
) -> None:
    """The one result the database refused: kept without its request when that
    request is unknown, else recorded as its request's failure with the reason."""
    parsed, ref = item
    with pipeline.sessions() as session:
        known = bool(intake_sql.existing_request_ids(session, [ref.request_id]))
    log.error(
        "batch %d: result %s refused by the database (%s)",
        batch_id,
        parsed.custom_id,
        one_line(exc) if known else "no such request",
        extra={"batch_id": batch_id, "request_id": ref.request_id},
    )
    try:
        if known:
            _store(pipeline, batch_id, [(refused(parsed, one_line(exc)), ref)], report, owner)
            return
        # Paid for, so kept and counted, but it settles nothing.
        with pipeline.sessions.begin() as session:
            row = _result_row(batch_id, parsed, ref, pipeline.clock(), load_prices())
            ingest_sql.insert_results(session, batch_id, [{**row, "request_id": None}])
        report.unknown_requests += 1
    except DATA_REFUSALS as again:
        # Its request, if any, is left in the batch: _finish sends it round again.
        report.unstorable += 1
        log.error("batch %d: result %s not stored: %s", batch_id, parsed.custom_id, again)


def _parse(
    lines: Iterable[bytes | Overlong], report: IngestReport, limit: int, owner: Owner
) -> list[Item]:
    out = []
    for line in lines:
        try:
            parsed = (
                parse_line(line) if isinstance(line, bytes) else parse_overlong(line.head, limit)
            )
        except UnreadableLine as exc:
            report.unreadable += 1
            shown = line if isinstance(line, bytes) else line.head
            log.error("unreadable result line (%s): %.200r", exc, shown)
            continue
        # A batch we planned carries our body, whatever name we went by when we sent it.
        named = None if owner.planned else owner.deployment
        ref = decode_custom_id(parsed.custom_id, named, legacy=owner.planned)
        if ref is None:
            report.foreign += 1
            continue
        out.append((parsed, ref))
    return out


def _ours(session: Session, parsed: Sequence[Item], report: IngestReport) -> list[Item]:
    """Drop results naming requests this database does not have (counted as foreign):
    a found batch may carry another's custom_ids in our shape."""
    known = intake_sql.existing_request_ids(session, [ref.request_id for _, ref in parsed])
    ours = [(p, ref) for p, ref in parsed if ref.request_id in known]
    report.foreign += len(parsed) - len(ours)
    return ours


def _result_row(
    batch_id: int, parsed: ParsedResult, ref: RequestRef, now: datetime, prices: PriceTable
) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "custom_id": parsed.custom_id,
        "request_id": ref.request_id,
        "attempt": ref.attempt,
        "result_type": parsed.result_type,
        "error_type": parsed.error_type,
        "error_message": parsed.error_message,
        "line": parsed.line,
        "model": parsed.model,
        "input_tokens": parsed.usage.get("input_tokens", 0),
        "output_tokens": parsed.usage.get("output_tokens", 0),
        "cache_write_5m_tokens": parsed.usage.get("cache_write_5m_tokens", 0),
        "cache_write_1h_tokens": parsed.usage.get("cache_write_1h_tokens", 0),
        "cache_read_tokens": parsed.usage.get("cache_read_tokens", 0),
        "cost_usd": _cost(parsed, prices),
        "duplicate": False,
        "created_at": now,
    }


def _cost(parsed: ParsedResult, prices: PriceTable) -> Decimal | None:
    """At batch prices; None for a model the price table does not list (unknown, not free)."""
    if parsed.result_type != "succeeded" or parsed.model is None:
        return None if parsed.result_type == "succeeded" else Decimal(0)
    usage = parsed.usage
    return prices.token_cost(
        parsed.model,
        usage["input_tokens"],
        usage["output_tokens"],
        usage["cache_write_5m_tokens"],
        usage["cache_write_1h_tokens"],
        usage["cache_read_tokens"],
    )


def _settle(
    pipeline: Pipeline,
    session: Session,
    batch_id: int,
    fresh: list[tuple[ParsedResult, RequestRef]],
    report: IngestReport,
    now: datetime,
) -> list[str]:
    """Move each fresh result's request on; returns requests that became final."""
    succeeded = [ref for p, ref in fresh if p.result_type == "succeeded"]
    # Most results succeed, and a success needs nothing of the request but its
    # membership: one guarded UPDATE settles them all, no rows read first.
    moved = ingest_sql.settle_attempts(session, batch_id, succeeded, RequestState.SUCCEEDED, now)
    report.settled[RequestState.SUCCEEDED.value] += len(moved)
    final = list(moved)
    # (custom_id, request_id) of results that move nothing: settled elsewhere, or unknown.
    stale = [
        (p.custom_id, ref.request_id)
        for p, ref in fresh
        if p.result_type == "succeeded" and ref.request_id not in moved
    ]
    others = [(p, ref) for p, ref in fresh if p.result_type != "succeeded"]
    members = ingest_sql.load_members(session, [ref.request_id for _, ref in others])
    groups: dict[tuple[RequestState, bool, str | None], list[str]] = defaultdict(list)
    pause_reason = None
    for parsed, ref in others:
        member = members.get(ref.request_id)
        if (
            member is None
            or member.state != RequestState.IN_BATCH
            or member.batch_id != batch_id
            or member.attempts != ref.attempt
        ):
            stale.append((parsed.custom_id, ref.request_id))
            continue
        outcome = decide(
            "errored" if parsed.result_type == "malformed" else parsed.result_type,
            parsed.error_type,
            member.charged_attempts + 1,
            member.max_attempts,
        )
        if parsed.result_type == "malformed":
            outcome = type(outcome)(RequestState.FAILED)
        if outcome.pause_submission:
            pause_reason = f"batch {batch_id}: {parsed.error_type}: {parsed.error_message}"
        error = _error_text(parsed)
        groups[(outcome.next_state, not outcome.pause_submission, error)].append(ref.request_id)
    duplicates = _without_unknown(session, batch_id, stale, report)
    if duplicates:
        # Results for requests already settled elsewhere: a duplicate, paid for.
        ingest_sql.mark_duplicates(session, batch_id, duplicates)
        report.duplicates += len(duplicates)
    if pause_reason is not None:
        controls_sql.pause_submission(session, pause_reason, now)
    for (state, charge, error), ids in groups.items():
        moved_ids = ingest_sql.settle_requests(session, batch_id, ids, state, now, charge, error)
        report.settled[state.value] += len(moved_ids)
        if state in TERMINAL_REQUEST_STATES:
            final.extend(moved_ids)
    return final


def _without_unknown(
    session: Session, batch_id: int, stale: list[tuple[str, str]], report: IngestReport
) -> list[str]:
    """The custom_ids of `stale` whose request exists. A result naming no request
    in SQL is kept without one (paid for, so counted), settles nothing, and is
    no duplicate. No foreign key catches it at the insert (see models.tables):
    this check costs nothing when every result moved its request, the usual case."""
    if not stale:
        return []
    known = intake_sql.existing_request_ids(session, [r for _, r in stale])
    unknown = [c for c, r in stale if r not in known]
    if unknown:
        log.error(
            "batch %d: %d results name no known request, e.g. %s",
            batch_id,
            len(unknown),
            unknown[0],
            extra={"batch_id": batch_id},
        )
        ingest_sql.forget_requests(session, batch_id, unknown)
        report.unknown_requests += len(unknown)
        report.new_results -= len(unknown)
    return [c for c, r in stale if r in known]


def _error_text(parsed: ParsedResult) -> str | None:
    if parsed.result_type == "expired":
        return "expired"
    if parsed.error_type is None:
        return None
    return f"{parsed.error_type}: {parsed.error_message}"


def _finish(pipeline: Pipeline, batch_id: int, report: IngestReport, owner: Owner) -> None:
    now = pipeline.clock()
    with pipeline.sessions.begin() as session:
        if report.foreign and not owner.planned:
            reconcile_sql.note_foreign(session, batch_id, report.foreign, now)
        left = ingest_sql.requests_left_in_batch(session, batch_id)
        if left:
            # The stream ended without their lines (unreadable, or never sent):
            # they go round again as if errored, so a bad line cannot loop forever.
            log.warning("batch %d: %d requests had no readable result", batch_id, len(left))
            members = ingest_sql.load_members(session, left)
            by_state: dict[RequestState, list[str]] = defaultdict(list)
            for request_id in left:
                m = members[request_id]
                outcome = decide("errored", "api_error", m.charged_attempts + 1, m.max_attempts)
                by_state[outcome.next_state].append(request_id)
            for state, ids in by_state.items():
                moved = ingest_sql.settle_requests(
                    session,
                    batch_id,
                    ids,
                    state,
                    now,
                    True,
                    "no readable result in the batch's results",
                )
                report.requeued_missing += len(moved)
        ingest_sql.finish_ingestion(session, batch_id, now)
