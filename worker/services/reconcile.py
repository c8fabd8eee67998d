"""Reconciliation: settle creates whose outcome was lost.

`POST /v1/messages/batches` has no idempotency key. When its answer is lost
(or the worker died after sending it) the batch may exist remotely or not.
The reconciler lists recent remote batches and adopts the one an intent made,
releases the intent's requests when none exists, and tracks any remote batch
no intent accounts for, so its spend is counted and its results ingested.

A remote batch is only judged once it is older than the create timeout: by
then any create still in flight that made it has either been recorded or has
failed into UNKNOWN, so an intent is never robbed of its own batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from batchline.adapters import store
from batchline.adapters.batch_api import ApiUnavailable, RemoteBatch
from batchline.domain.states import BatchState
from batchline.services.context import Pipeline

log = logging.getLogger("batchline.reconcile")

STRAY_HORIZON = timedelta(hours=24)


@dataclass
class ReconcileReport:
    marked_unknown: list[int] = field(default_factory=list)
    adopted: dict[int, str] = field(default_factory=dict)
    released: list[int] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)


def reconcile(pipeline: Pipeline) -> ReconcileReport:
    report = ReconcileReport()
    now = pipeline.clock()
    skew = timedelta(seconds=pipeline.settings.clock_skew_seconds)
    settle = timedelta(seconds=pipeline.settings.create_timeout_seconds) + skew
    with pipeline.sessions.begin() as session:
        for batch_id in store.stale_submissions(session, now - settle):
            if store.record_outcome_unknown(session, batch_id, "create never recorded", now):
                report.marked_unknown.append(batch_id)
        since = store.earliest_open_submission(session, now - STRAY_HORIZON)
    if since is None:
        return report
    try:
        remotes = list(pipeline.api.list_recent(since - skew))
    except ApiUnavailable as exc:
        log.warning("reconcile could not list batches, next run retries: %s", exc)
        return report
    with pipeline.sessions.begin() as session:
        known = store.known_remote_ids(session, [r.id for r in remotes])
        ripe = [r for r in remotes if r.id not in known and r.created_at <= now - settle]
        for batch in store.unknown_batches(session):
            match = _match(batch.request_count, batch.submit_started_at, ripe, skew)
            if match is not None:
                ripe.remove(match)
                if store.adopt_remote(session, batch.id, match, now):
                    report.adopted[batch.id] = match.id
                    log.warning(
                        "batch %d adopted remote %s",
                        batch.id,
                        match.id,
                        extra={"batch_id": batch.id, "remote_id": match.id},
                    )
            elif _given_up(batch.submit_started_at, now - 2 * settle) and store.release_batch(
                session,
                batch.id,
                [BatchState.UNKNOWN],
                "create outcome unknown; no remote batch found",
                now,
            ):
                report.released.append(batch.id)
                log.warning(
                    "batch %d released: no remote batch was made",
                    batch.id,
                    extra={"batch_id": batch.id},
                )
        for stray in ripe:
            store.insert_stray_batch(session, stray, now)
            report.strays.append(stray.id)
            log.error(
                "remote batch %s matches no intent: tracked as a duplicate",
                stray.id,
                extra={"remote_id": stray.id},
            )
    return report


def _given_up(started: datetime | None, cutoff: datetime) -> bool:
    return started is not None and started < cutoff


def _match(
    count: int, started: datetime | None, ripe: list[RemoteBatch], skew: timedelta
) -> RemoteBatch | None:
    if started is None:
        return None
    fits = [r for r in ripe if r.request_count == count and r.created_at >= started - skew]
    # The earliest fitting batch is the one the first create made.
    return min(fits, key=lambda r: r.created_at, default=None)
