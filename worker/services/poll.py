"""Polling: what the API says of each in-flight batch, stored in SQL."""

from __future__ import annotations

import logging
from datetime import timedelta

from batchline.adapters.batch_api import ApiFailure
from batchline.adapters.sql import ingest_lease as ingest_lease_sql
from batchline.adapters.sql import poll as poll_sql
from batchline.adapters.sql import rows as rows_sql
from batchline.domain.polling import next_poll_delay
from batchline.domain.retry import Action, decide
from batchline.domain.states import BatchState
from batchline.services.context import Pipeline

log = logging.getLogger("batchline.poll")


def lease_due_polls(pipeline: Pipeline, limit: int = 500) -> list[int]:
    lease = timedelta(seconds=pipeline.settings.poll_interval_seconds)
    with pipeline.sessions.begin() as session:
        return poll_sql.lease_due_polls(session, pipeline.clock(), lease, limit)


def poll_batch(pipeline: Pipeline, batch_id: int) -> bool:
    """Retrieve (or cancel) one batch and record it; True when it has ended."""
    with pipeline.sessions.begin() as session:
        batch = rows_sql.get_batch(session, batch_id)
        if batch is None or batch.state != BatchState.SUBMITTED or batch.remote_id is None:
            return batch is not None and batch.state == BatchState.ENDED
        remote_id, cancel = batch.remote_id, batch.cancel_requested
        status, submitted_at = batch.processing_status, batch.submitted_at
    try:
        if cancel and status == "in_progress":
            remote = pipeline.api.cancel(remote_id)
            log.info(
                "batch %d (%s) cancel sent", batch_id, remote_id, extra=_ids(batch_id, remote_id)
            )
        else:
            remote = pipeline.api.retrieve(remote_id)
    except ApiFailure as exc:
        return _failed(pipeline, batch_id, remote_id, exc)
    now = pipeline.clock()
    age = (now - submitted_at).total_seconds() if submitted_at is not None else float("inf")
    delay = next_poll_delay(age, pipeline.settings.poll_interval_seconds)
    next_poll = now + timedelta(seconds=delay)
    with pipeline.sessions.begin() as session:
        poll_sql.record_poll(session, batch_id, remote, now, next_poll)
    if remote.ended:
        log.info(
            "batch %d (%s) ended: %d succeeded, %d errored, %d canceled, %d expired",
            batch_id,
            remote_id,
            remote.succeeded,
            remote.errored,
            remote.canceled,
            remote.expired,
            extra=_ids(batch_id, remote_id),
        )
    return remote.ended


def _failed(pipeline: Pipeline, batch_id: int, remote_id: str, exc: ApiFailure) -> bool:
    """Carry out the retry policy's decision on a failed poll; True when the batch is over."""
    action = decide(exc.kind).action
    if action is Action.WRITE_OFF:
        # Deleted remotely: nothing more will come; ingestion requeues its requests.
        log.error(
            "batch %d (%s) is gone remotely: %s",
            batch_id,
            remote_id,
            exc,
            extra=_ids(batch_id, remote_id),
        )
        with pipeline.sessions.begin() as session:
            poll_sql.mark_gone(session, batch_id, str(exc), pipeline.clock())
        return True
    if action is Action.NEXT_SWEEP:
        log.warning(
            "batch %d poll failed, next sweep retries: %s",
            batch_id,
            exc,
            extra=_ids(batch_id, remote_id),
        )
        return False
    raise exc


def _ids(batch_id: int, remote_id: str) -> dict[str, object]:
    return {"batch_id": batch_id, "remote_id": remote_id}


def batches_to_ingest(pipeline: Pipeline) -> list[int]:
    with pipeline.sessions.begin() as session:
        return ingest_lease_sql.batches_to_ingest(session, pipeline.clock())


def batches_for_free_slots(pipeline: Pipeline, besides: int | None = None) -> list[int]:
    """Ended batches to send to ingestion now (`besides` one, the download that
    just ended): no more than the download slots free (BATCHLINE_INGEST_CONCURRENCY).
    A task sent without a slot finds none and only takes a worker process for
    nothing; with twenty ended batches and one slot, every sweep sent nineteen."""
    settings = pipeline.settings
    now = pipeline.clock()
    lease = timedelta(seconds=settings.ingest_lease_seconds)
    with pipeline.sessions.begin() as session:
        free = settings.ingest_concurrency - ingest_lease_sql.running_downloads(session, now, lease)
        if free <= 0:
            return []
        return ingest_lease_sql.batches_to_ingest(session, now, limit=free, besides=besides)
