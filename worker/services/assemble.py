"""Assembly: cut queued requests into batch intents under the API's limits."""

from __future__ import annotations

import logging

from batchline import ledger
from batchline.adapters import priming
from batchline.adapters.sql import assemble as assemble_sql
from batchline.adapters.sql import controls as controls_sql
from batchline.domain.planning import (
    ENVELOPE_BYTES_PER_REQUEST,
    Limits,
    should_cut,
    take_while_fits,
)
from batchline.services.context import Pipeline

log = logging.getLogger("batchline.assemble")


def assemble_batches(pipeline: Pipeline, max_batches: int = 10) -> list[int]:
    """Create batch intents while enough requests wait; returns their ids."""
    settings = pipeline.settings
    limits = Limits(settings.max_batch_requests, settings.max_batch_bytes)
    made, released = _prime(pipeline)
    for _ in range(max_batches):
        with pipeline.sessions.begin() as session:
            if controls_sql.submission_paused(session) is not None:
                break
            cap = settings.daily_spend_cap_usd
            if cap > 0 and ledger.cap_use(session, cap, pipeline.clock()).room <= 0:
                break
            # Under a cap, a request whose model has no price cannot be bounded: it
            # stays queued (batchline status says why) rather than be counted as $0.
            held = ledger.unpriced_models(session, queued_only=True) if cap > 0 else []
            count, size, oldest = assemble_sql.queued_summary(session, held)
            now = pipeline.clock()
            waited = (now - oldest).total_seconds() if oldest is not None else 0.0
            if released:
                # A group whose primer just finished goes now, while its cache is warm.
                waited = max(waited, settings.max_wait_seconds)
            if not should_cut(count, size, waited, limits, settings.max_wait_seconds):
                break
            # One batch, one anthropic-beta header: cut from the oldest request's group.
            betas = assemble_sql.oldest_queued_betas(session, held)
            candidates = assemble_sql.lock_queued_requests(
                session, limits.max_requests, held, betas
            )
            sizes = dict(candidates)
            chosen = list(take_while_fits(candidates, limits))
            if not chosen:
                break
            body = sum(sizes[i] + ENVELOPE_BYTES_PER_REQUEST for i in chosen)
            batch_id = assemble_sql.create_batch_intent(session, chosen, body, now)
        log.info(
            "batch %d prepared with %d requests (%d bytes)",
            batch_id,
            len(chosen),
            body,
            extra={"batch_id": batch_id, "count": len(chosen)},
        )
        made.append(batch_id)
    return made


def _prime(pipeline: Pipeline) -> tuple[list[int], list[str]]:
    """Start primers for new prefix groups; returns (primer batches, groups released)."""
    settings = pipeline.settings
    with pipeline.sessions.begin() as session:
        now = pipeline.clock()
        released = priming.settle_primers(session, now)
        if settings.prime_min_group <= 0 or controls_sql.submission_paused(session) is not None:
            return [], released
        made = []
        for group in priming.groups_to_prime(session, settings.prime_min_group, now):
            batch_id = priming.start_primer(session, group, now)
            if batch_id is not None:
                made.append(batch_id)
                log.info(
                    "cache primer batch %d for prefix %s",
                    batch_id,
                    group,
                    extra={"batch_id": batch_id},
                )
    return made, released
