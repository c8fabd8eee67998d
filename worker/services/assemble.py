"""Assembly: cut queued requests into batch intents under the API's limits."""

from __future__ import annotations

import logging

from worker.adapters import store
from worker.domain.planning import ENVELOPE_BYTES_PER_REQUEST, Limits, should_cut, take_while_fits
from worker.ledger import spend_cap_reached
from worker.services.context import Pipeline

log = logging.getLogger("batchline.assemble")


def assemble_batches(pipeline: Pipeline, max_batches: int = 10) -> list[int]:
    """Create batch intents while enough requests wait; returns their ids."""
    settings = pipeline.settings
    limits = Limits(settings.max_batch_requests, settings.max_batch_bytes)
    made: list[int] = []
    for _ in range(max_batches):
        with pipeline.sessions.begin() as session:
            if store.submission_paused(session) is not None:
                break
            if spend_cap_reached(session, settings.daily_spend_cap_usd, pipeline.clock()):
                break
            count, size, oldest = store.queued_summary(session)
            now = pipeline.clock()
            waited = (now - oldest).total_seconds() if oldest is not None else 0.0
            if not should_cut(count, size, waited, limits, settings.max_wait_seconds):
                break
            candidates = store.lock_queued_requests(session, limits.max_requests)
            sizes = dict(candidates)
            chosen = list(take_while_fits(candidates, limits))
            if not chosen:
                break
            body = sum(sizes[i] + ENVELOPE_BYTES_PER_REQUEST for i in chosen)
            batch_id = store.create_batch_intent(session, chosen, body, now)
        log.info(
            "batch %d prepared with %d requests (%d bytes)",
            batch_id,
            len(chosen),
            body,
            extra={"batch_id": batch_id, "count": len(chosen)},
        )
        made.append(batch_id)
    return made
