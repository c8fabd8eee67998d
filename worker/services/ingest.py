"""Ingestion: stream an ended batch's results into SQL and settle its requests.

Results are read as raw bytes and written a chunk per transaction, so memory
stays flat however large the batch. Running it twice changes nothing: result
rows are insert-if-absent, and only a newly inserted row moves its request.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any

from sqlalchemy.orm import Session

from batchline.adapters import store
from batchline.adapters.batch_api import ApiUnavailable, RemoteBatchGone
from batchline.domain.cost import PriceTable
from batchline.domain.custom_ids import RequestRef, decode_custom_id
from batchline.domain.jsonl import iter_lines
from batchline.domain.results import ParsedResult, UnreadableLine, parse_line
from batchline.domain.retry import decide
from batchline.domain.states import TERMINAL_REQUEST_STATES, RequestState
from batchline.prices import load_prices
from batchline.services.context import Pipeline

log = logging.getLogger("batchline.ingest")


@dataclass
class IngestReport:
    batch_id: int
    lines: int = 0
    new_results: int = 0
    duplicates: int = 0
    unreadable: int = 0
    foreign: int = 0
    settled: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    requeued_missing: int = 0


def ingest_batch(pipeline: Pipeline, batch_id: int) -> IngestReport | None:
    """Ingest one ended batch; None when another worker holds it or it is done."""
    lease = timedelta(seconds=pipeline.settings.ingest_lease_seconds)
    now = pipeline.clock()
    with pipeline.sessions.begin() as session:
        if not store.take_ingest_lease(session, batch_id, now, now + lease):
            return None
        batch = store.get_batch(session, batch_id)
        assert batch is not None and batch.remote_id is not None
        remote_id = batch.remote_id
        owner = Owner(
            store.deployment_name(session, pipeline.settings.deployment, now),
            planned=batch.origin == "planned",
        )
    report = IngestReport(batch_id)
    try:
        with pipeline.api.results(remote_id) as chunks:
            for lines in _batched(iter_lines(chunks), pipeline.settings.ingest_chunk):
                _ingest_chunk(pipeline, batch_id, lines, report, owner)
                with pipeline.sessions.begin() as session:
                    store.extend_ingest_lease(session, batch_id, pipeline.clock() + lease)
    except ApiUnavailable:
        # Give the batch back at once, so the next sweep retries without waiting out the lease.
        with pipeline.sessions.begin() as session:
            store.release_ingest_lease(session, batch_id)
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
    _finish(pipeline, batch_id, report, owner)
    log.info(
        "batch %d (%s) ingested: %d lines, %d new, %d duplicate, %d unreadable, settled %s",
        batch_id,
        remote_id,
        report.lines,
        report.new_results,
        report.duplicates,
        report.unreadable,
        dict(report.settled),
    )
    return report


def _batched(lines: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    while chunk := list(islice(lines, size)):
        yield chunk


@dataclass(frozen=True)
class Owner:
    """Whose results these are: this deployment's name, and whether it planned the
    batch (a batch the reconciler found must prove with its custom_ids whose it is)."""

    deployment: str
    planned: bool


def _ingest_chunk(
    pipeline: Pipeline, batch_id: int, lines: list[bytes], report: IngestReport, owner: Owner
) -> None:
    report.lines += len(lines)
    parsed = _parse(lines, report, owner)
    now = pipeline.clock()
    with pipeline.sessions.begin() as session:
        if not owner.planned:
            parsed = _ours(session, parsed, report)
        prices = load_prices()
        rows = [_result_row(batch_id, p, ref, now, prices) for p, ref in parsed]
        new_ids = store.insert_results(session, batch_id, rows)
        fresh = [(p, ref) for p, ref in parsed if p.custom_id in new_ids]
        report.new_results += len(fresh)
        if not owner.planned:
            # The evidence: these results name these requests, so this is their batch.
            store.claim_from_unknown(session, batch_id, [ref for _, ref in fresh])
        settled = _settle(pipeline, session, batch_id, fresh, report, now)
    # After the commit: waiters are woken only for what is durable.
    pipeline.notifier.settled(settled)


def _parse(
    lines: Iterable[bytes], report: IngestReport, owner: Owner
) -> list[tuple[ParsedResult, RequestRef]]:
    out = []
    for line in lines:
        try:
            parsed = parse_line(line)
        except UnreadableLine as exc:
            report.unreadable += 1
            log.error("unreadable result line (%s): %.200r", exc, line)
            continue
        # A batch we planned carries our body, whatever name we went by when we sent it.
        named = None if owner.planned else owner.deployment
        ref = decode_custom_id(parsed.custom_id, named, legacy=owner.planned)
        if ref is None:
            report.foreign += 1
            continue
        out.append((parsed, ref))
    return out


def _ours(
    session: Session, parsed: list[tuple[ParsedResult, RequestRef]], report: IngestReport
) -> list[tuple[ParsedResult, RequestRef]]:
    """Drop results naming requests this database does not have (counted as foreign):
    a found batch may carry another's custom_ids in our shape."""
    known = store.existing_request_ids(session, [ref.request_id for _, ref in parsed])
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
        "body": parsed.body,
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
    moved = store.settle_attempts(session, batch_id, succeeded, RequestState.SUCCEEDED, now)
    report.settled[RequestState.SUCCEEDED.value] += len(moved)
    final = list(moved)
    stale = [
        p.custom_id
        for p, ref in fresh
        if p.result_type == "succeeded" and ref.request_id not in moved
    ]
    others = [(p, ref) for p, ref in fresh if p.result_type != "succeeded"]
    members = store.load_members(session, [ref.request_id for _, ref in others])
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
            stale.append(parsed.custom_id)
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
    if stale:
        # Results for requests already settled elsewhere: a duplicate, paid for.
        store.mark_duplicates(session, batch_id, stale)
        report.duplicates += len(stale)
    if pause_reason is not None:
        store.pause_submission(session, pause_reason, now)
    for (state, charge, error), ids in groups.items():
        moved_ids = store.settle_requests(session, batch_id, ids, state, now, charge, error)
        report.settled[state.value] += len(moved_ids)
        if state in TERMINAL_REQUEST_STATES:
            final.extend(moved_ids)
    return final


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
            store.note_foreign(session, batch_id, report.foreign, now)
        left = store.requests_left_in_batch(session, batch_id)
        if left:
            # The stream ended without their lines (unreadable, or never sent):
            # they go round again as if errored, so a bad line cannot loop forever.
            log.warning("batch %d: %d requests had no readable result", batch_id, len(left))
            members = store.load_members(session, left)
            by_state: dict[RequestState, list[str]] = defaultdict(list)
            for request_id in left:
                m = members[request_id]
                outcome = decide("errored", "api_error", m.charged_attempts + 1, m.max_attempts)
                by_state[outcome.next_state].append(request_id)
            for state, ids in by_state.items():
                moved = store.settle_requests(
                    session,
                    batch_id,
                    ids,
                    state,
                    now,
                    True,
                    "no readable result in the batch's results",
                )
                report.requeued_missing += len(moved)
        store.finish_ingestion(session, batch_id, now)
