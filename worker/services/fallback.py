"""The deadline fallback: requests that their batch will not finish in time go
once through the synchronous Messages API, at full price.

Each scan (a beat tick, skipped while nothing has a deadline):
1. requests not final by their deadline minus BATCHLINE_SYNC_LATENCY_SECONDS
   get a pending fallback (once per request);
2. up to BATCHLINE_SYNC_CONCURRENCY calls run at once, over all workers,
   none while a 429's retry-after holds;
3. a reply settles the request with a `via = 'sync'` result, unless its batch
   settled it first; its batch goes on, and the batch's own result for it is
   later stored as a counted duplicate (ingestion finds it settled);
4. a failure is retried while sync_retry_delay allows, else the request is left
   for its batch;
5. a batch whose every unsettled request fell back is cancelled.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from batchline.adapters.messages_api import SyncCallFailed, SyncMessages, SyncReply
from batchline.adapters.sql import cancel as cancel_sql
from batchline.adapters.sql import fallback as fallback_sql
from batchline.adapters.sql.fallback import Claimed
from batchline.domain.cost import Usage
from batchline.domain.deadlines import fallback_due_before
from batchline.domain.results import UnreadableLine, parse_line
from batchline.domain.retry import sync_retry_delay
from batchline.prices import load_prices
from batchline.services.context import Pipeline

log = logging.getLogger("batchline.fallback")

# A claim outlives the call's own timeout by this much before another worker takes it.
CLAIM_MARGIN_SECONDS = 30.0


@dataclass
class FallbackReport:
    due: int = 0
    called: int = 0
    settled: int = 0
    duplicates: int = 0
    retried: int = 0
    given_up: int = 0
    batches_canceled: int = 0


def run_fallbacks(pipeline: Pipeline, messages: SyncMessages) -> FallbackReport:
    report = FallbackReport()
    settings = pipeline.settings
    now = pipeline.clock()
    claim_until = now + timedelta(seconds=settings.sync_timeout_seconds + CLAIM_MARGIN_SECONDS)
    with pipeline.sessions.begin() as session:
        report.due = fallback_sql.mark_due(
            session, fallback_due_before(now, settings.sync_latency_seconds), now
        )
        fallback_sql.close_settled(session, now)
        paused = fallback_sql.sync_paused_until(session)
        claimed = (
            []
            if paused is not None and paused > now
            else fallback_sql.claim_due(session, now, settings.sync_concurrency, claim_until)
        )
    if claimed:
        with ThreadPoolExecutor(len(claimed), thread_name_prefix="fallback") as pool:
            answers = list(pool.map(lambda c: _call(messages, c), claimed))
        for one, answer in zip(claimed, answers, strict=True):
            _record(pipeline, one, answer, report)
    report.batches_canceled = cancel_fallen_back_batches(pipeline)
    return report


def _call(messages: SyncMessages, claimed: Claimed) -> SyncReply | SyncCallFailed:
    betas = claimed.betas.split(",") if claimed.betas else ()
    try:
        return messages.create(claimed.params.encode("utf-8"), betas)
    except SyncCallFailed as exc:
        return exc


def _record(
    pipeline: Pipeline, claimed: Claimed, answer: SyncReply | SyncCallFailed, report: FallbackReport
) -> None:
    report.called += 1
    now = pipeline.clock()
    request_id = claimed.request_id
    extra = {"request_id": request_id}
    if isinstance(answer, SyncReply):
        row = _result_row(claimed, answer, now)
        with pipeline.sessions.begin() as session:
            settled = fallback_sql.record_sync_result(session, request_id, row, now)
        if settled:
            report.settled += 1
            # After the commit: waiters are woken only for what is durable.
            pipeline.notifier.settled([request_id])
            log.info("request %s answered synchronously for its deadline", request_id, extra=extra)
        else:
            report.duplicates += 1
            log.warning("request %s: sync answer came after its batch's", request_id, extra=extra)
        return
    left = (claimed.deadline_at - now).total_seconds()
    delay = sync_retry_delay(answer.status, answer.retry_after, claimed.tries, left)
    with pipeline.sessions.begin() as session:
        if answer.status == 429:
            # Every fallback waits out the rate limit, not only this one.
            wait = answer.retry_after if answer.retry_after is not None else 1.0
            fallback_sql.pause_sync(session, now + timedelta(seconds=wait), now)
        if delay is None:
            fallback_sql.give_up(session, request_id, str(answer), now)
        else:
            fallback_sql.retry_later(
                session, request_id, now + timedelta(seconds=delay), str(answer), now
            )
    if delay is None:
        report.given_up += 1
        log.warning(
            "request %s: sync fallback gave up (%s); its batch goes on",
            request_id,
            answer,
            extra=extra,
        )
    else:
        report.retried += 1
        log.info(
            "request %s: sync fallback retries in %.1f s (%s)",
            request_id,
            delay,
            answer,
            extra=extra,
        )


def _result_row(claimed: Claimed, reply: SyncReply, now: datetime) -> dict[str, object]:
    """The result in a batch results line's shape, so every reader handles it alike."""
    custom_id = claimed.request_id
    line = b'{"custom_id":"%s","result":{"type":"succeeded","message":%s}}' % (
        custom_id.encode("ascii"),
        reply.message.strip(),
    )
    try:
        parsed = parse_line(line)
    except UnreadableLine:
        parsed = None
    usage = parsed.usage if parsed is not None else {}
    model = parsed.model if parsed is not None else None
    cost = None
    if model is not None:
        cost = load_prices().synchronous_cost(model, Usage(**usage))
    return {
        "custom_id": custom_id,
        "request_id": claimed.request_id,
        "attempt": claimed.attempt,
        "result_type": parsed.result_type if parsed is not None else "malformed",
        "line": line,
        "model": model,
        "input_tokens": usage.get("input_tokens", 0),
        "output_tokens": usage.get("output_tokens", 0),
        "cache_write_5m_tokens": usage.get("cache_write_5m_tokens", 0),
        "cache_write_1h_tokens": usage.get("cache_write_1h_tokens", 0),
        "cache_read_tokens": usage.get("cache_read_tokens", 0),
        "cost_usd": cost,
        "created_at": now,
    }


def cancel_fallen_back_batches(pipeline: Pipeline) -> int:
    """Cancel in-flight batches left with no unsettled request: every one fell back."""
    now = pipeline.clock()
    with pipeline.sessions.begin() as session:
        ids = fallback_sql.batches_all_fallen_back(session)
        canceled = [i for i in ids if cancel_sql.request_batch_cancel(session, i, now)]
    for batch_id in canceled:
        log.info(
            "batch %d: every request fell back; cancel requested",
            batch_id,
            extra={"batch_id": batch_id},
        )
    return len(canceled)
