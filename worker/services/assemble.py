"""Assembly: cut queued requests into batch intents under the API's limits."""

from __future__ import annotations

import logging
import math
from datetime import datetime
from itertools import zip_longest

from sqlalchemy.orm import Session

from batchline import ledger
from batchline.adapters import priming
from batchline.adapters.sql import assemble as assemble_sql
from batchline.adapters.sql import capacity as capacity_sql
from batchline.adapters.sql import controls as controls_sql
from batchline.domain.planning import (
    ENVELOPE_BYTES_PER_REQUEST,
    Limits,
    should_cut,
    take_while_fits,
)
from batchline.domain.scheduling import (
    Waiting,
    allocate,
    cut_due,
    parse_priority_waits,
    parse_share_weights,
)
from batchline.services import capacity
from batchline.services.context import Pipeline

log = logging.getLogger("batchline.assemble")


def full_batch_queued(pipeline: Pipeline) -> bool:
    """Whether a full batch (by count or by bytes) could be cut now: then its cut
    need not wait for the next tick. One aggregate query; assembly itself decides
    what goes.

    Intake asks after every chunk, so what would stop any cut is asked first
    (`_cut_room`)."""
    settings = pipeline.settings
    with pipeline.sessions() as session:
        room = _cut_room(session, settings.max_in_flight_requests)
        if room <= 0:
            return False
        count, size, _oldest = assemble_sql.queued_summary(session)
    return _full(
        count, size, Limits(min(settings.max_batch_requests, room), settings.max_batch_bytes)
    )


def _cut_room(session: Session, limit: int) -> int:
    """How many requests a cut may take now: none while submission is paused, else
    the in-flight room. A row each: asked before any count over the queue, which
    is as long as the backlog a pause or a full capacity holds back."""
    if controls_sql.submission_paused(session) is not None:
        return 0
    return capacity.assembly_room(session, limit)


def _full(count: int, size: int, limits: Limits) -> bool:
    """Whether `count` requests of `size` bytes fill a batch (by count or by bytes),
    whatever their wait: what the maximum wait adds is decided apart (`_due`)."""
    return should_cut(count, size, 0.0, limits, math.inf)


def assemble_batches(
    pipeline: Pipeline, max_batches: int = 10, *, only_full: bool = False
) -> list[int]:
    """Create batch intents while enough requests wait; returns their ids.

    `only_full` cuts full batches (by count or bytes) and nothing else, for
    intake's cut mid-run: requests that merely waited their maximum, and cache
    primers, are the tick's. Two intakes running at once both see the same
    full batch; without it the second, once the first had cut, made the few
    requests left into a batch of their own (a million requests went out as
    nine batches of 100,000 and nine of 5,000; bench/README.md)."""
    made, released = ([], []) if only_full else _prime(pipeline)
    for _ in range(max_batches):
        with pipeline.sessions.begin() as session:
            cut = _cut_one(pipeline, session, bool(released), only_full)
        if cut is None:
            break
        batch_id, count, body = cut
        log.info(
            "batch %d prepared with %d requests (%d bytes)",
            batch_id,
            count,
            body,
            extra={"batch_id": batch_id, "count": count},
        )
        made.append(batch_id)
    return made


def _cut_one(
    pipeline: Pipeline, session: Session, released: bool, only_full: bool = False
) -> tuple[int, int, int] | None:
    """One batch intent if one is due (only a full one, with `only_full`): (id,
    requests, body bytes); None if none is."""
    settings = pipeline.settings
    assemble_sql.one_assembler(session)
    room = _cut_room(session, settings.max_in_flight_requests)
    if room <= 0:
        return None
    cap = settings.daily_spend_cap_usd
    if cap > 0 and ledger.cap_use(session, cap, pipeline.clock()).room <= 0:
        return None
    # Under a cap, a request whose model has no price cannot be bounded: it
    # stays queued (batchline status says why) rather than be counted as $0.
    held = ledger.unpriced_models(session, queued_only=True) if cap > 0 else []
    waiting = assemble_sql.queued_by_priority(session, held)
    if not waiting:
        return None
    limits = Limits(min(settings.max_batch_requests, room), settings.max_batch_bytes)
    full, waited = _due(pipeline, waiting, limits)
    waited = waited and not only_full
    if not (released or full or waited):
        return None
    # One batch, one anthropic-beta header: cut from the group of the request that goes next.
    priorities = [p for p, _n, _b, _o in waiting]
    betas = assemble_sql.oldest_queued_betas(session, held, max(priorities))
    candidates = _candidates(pipeline, session, limits, held, betas, priorities)
    sizes = dict(candidates)
    chosen = list(take_while_fits(candidates, limits))
    filled = len(chosen) >= limits.max_requests or len(chosen) < len(candidates)
    if not chosen or not (released or waited or filled):
        # "Full" counted work its share may not take yet: wait, not a tiny batch a tick.
        return None
    body = sum(sizes[i] + ENVELOPE_BYTES_PER_REQUEST for i in chosen)
    now = pipeline.clock()
    return assemble_sql.create_batch_intent(session, chosen, body, now), len(chosen), body


def _due(
    pipeline: Pipeline, waiting: list[tuple[int, int, int, datetime]], limits: Limits
) -> tuple[bool, bool]:
    """(full, waited): whether a batch would be full, and whether some priority waited
    its maximum wait. (A primer group just released goes at once: the caller.)"""
    settings = pipeline.settings
    now = pipeline.clock()
    count = sum(n for _p, n, _b, _o in waiting)
    size = sum(b for _p, _n, b, _o in waiting)
    waited = cut_due(
        [Waiting(p, n, (now - oldest).total_seconds()) for p, n, _b, oldest in waiting],
        parse_priority_waits(settings.priority_max_wait),
        settings.max_wait_seconds,
    )
    return _full(count, size, limits), waited


def _candidates(
    pipeline: Pipeline,
    session: Session,
    limits: Limits,
    held: list[str],
    betas: str | None,
    priorities: list[int],
) -> list[tuple[str, int]]:
    """The requests the batch is cut from, locked, in the order they go."""
    settings = pipeline.settings
    if not settings.share_tag:
        return assemble_sql.lock_queued_requests(
            session, limits.max_requests, held, betas, None, priorities
        )
    use = capacity.capacity_use(session, settings.max_in_flight_requests)
    portions = allocate(
        assemble_sql.queued_by_share(session, held, betas),
        limits.max_requests,
        parse_share_weights(settings.share_weights),
        capacity_sql.in_flight_by_share(session),
        use.effective_limit,
    )
    per_key = [
        assemble_sql.lock_queued_requests(session, n, held, betas, key, priorities)
        for key, n in sorted(portions.items())
    ]
    # Interleaved, so a batch cut short by its byte limit still holds every key's part.
    return [row for rows in zip_longest(*per_key) for row in rows if row is not None]


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
