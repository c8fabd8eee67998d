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

from batchline.adapters.batch_api import ApiFailure
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
from batchline.domain.retry import Action, decide
from batchline.prices import load_prices
from batchline.services.context import Pipeline
from batchline.services.ingest_lease import DeadlinePassed, DownloadStopped, IngestLease
from batchline.services.isolate import one_line, store_isolating
from batchline.services.read_ahead import read_ahead
from batchline.services.settle import Settled, settle_missing, settle_results

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

    def add_settled(self, settled: Settled) -> None:
        self.duplicates += settled.duplicates
        self.unknown_requests += settled.unknown
        self.new_results -= settled.unknown
        for state, n in settled.by_state.items():
            self.settled[state] += n

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
    except (ApiFailure, DownloadStopped) as exc:
        if not _download_failed(lease, batch_id, remote_id, report, exc):
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


def _download_failed(
    lease: IngestLease,
    batch_id: int,
    remote_id: str,
    report: IngestReport,
    exc: ApiFailure | DownloadStopped,
) -> bool:
    """Carry out the retry policy's decision on a download that failed; True when
    the batch is to be finished with what was read."""
    action = decide(exc.kind).action
    ids = {"batch_id": batch_id, "remote_id": remote_id}
    if action is Action.NEXT_SWEEP:
        # Give the batch back at once, so the next sweep retries without waiting out the lease.
        lease.release()
        raise exc
    if action is Action.WRITE_OFF:
        # Deleted, or archived after 29 days: what was not read goes round again.
        log.error("batch %d (%s) results are gone: %s", batch_id, remote_id, exc, extra=ids)
        return True
    if action in (Action.BACK_OFF, Action.STOP):
        # What was stored stays stored; the next download skips it.
        log.error(
            "batch %d (%s) download stopped after %d lines: %s",
            batch_id,
            remote_id,
            report.lines,
            exc,
            extra=ids,
        )
        if action is Action.BACK_OFF:
            lease.back_off()
        return False
    raise exc


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
        settled = settle_results(session, batch_id, fresh, now)
    tally.add_settled(settled)
    report.add(tally)
    # After the commit: waiters are woken only for what is durable.
    pipeline.notifier.settled(settled.final)


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


def _finish(pipeline: Pipeline, batch_id: int, report: IngestReport, owner: Owner) -> None:
    now = pipeline.clock()
    with pipeline.sessions.begin() as session:
        if report.foreign and not owner.planned:
            reconcile_sql.note_foreign(session, batch_id, report.foreign, now)
        report.requeued_missing += settle_missing(session, batch_id, now)
        ingest_sql.finish_ingestion(session, batch_id, now)
