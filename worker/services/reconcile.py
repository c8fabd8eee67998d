"""Reconciliation: settle creates whose outcome was lost, on evidence.

`POST /v1/messages/batches` has no idempotency key. When its answer is lost
(or the worker died after sending it) the batch may exist remotely or not, and
a count and a time cannot tell whose a batch is: several intents of one size
may be lost at once, and another client of the same API key (a script, a
second deployment) may make batches of that size in the same minute.

So the reconciler adopts nothing on inference. It tracks every remote batch
in the window that SQL does not know (its spend counts, it is polled and its
results read), and the custom_ids in those results decide: ingestion moves
the requests they name out of the unknown intent that holds them on that very
attempt (`claim_from_unknown`), and results naming nobody of ours are counted
as foreign. An unknown intent is released, its requests going round again
uncharged, once nothing it sent can still turn up: every found batch that
might be its own has been read, and its create is long past.

Windows are in the API's clock: remote batches carry the API's `created_at`,
and the API's `Date` header says how far this machine's clock is from it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from batchline.adapters.batch_api import ApiUnavailable, RemoteBatch
from batchline.adapters.sql import reconcile as reconcile_sql
from batchline.adapters.sql import submit as submit_sql
from batchline.domain.states import BatchState
from batchline.domain.timing import api_offset
from batchline.services.context import Pipeline

log = logging.getLogger("batchline.reconcile")

STRAY_HORIZON = timedelta(hours=24)


@dataclass
class ReconcileReport:
    marked_unknown: list[int] = field(default_factory=list)
    # Remote batches SQL did not know, now tracked until their results say whose they are.
    tracked: list[str] = field(default_factory=list)
    # Remote batches of a size no open intent has: another client's, left alone.
    other_sizes: int = 0
    released: list[int] = field(default_factory=list)
    # How far the API's clock was ahead of this machine's (negative: behind).
    api_offset: timedelta = timedelta()


@dataclass(frozen=True)
class Window:
    """The reconciler's view of time: this machine's now, and the API's offset from it."""

    now: datetime
    offset: timedelta
    margin: timedelta
    create_timeout: timedelta

    @property
    def api_now(self) -> datetime:
        return self.now + self.offset

    def api_time(self, local: datetime) -> datetime:
        return local + self.offset

    def ripe(self, remote: RemoteBatch) -> bool:
        # Older than any create still in flight could be (the same bound that turns
        # SUBMITTING into UNKNOWN): such a create records its own batch.
        return remote.created_at <= self.api_now - self.create_timeout - self.margin


def reconcile(pipeline: Pipeline) -> ReconcileReport:
    report = ReconcileReport()
    now = pipeline.clock()
    margin = timedelta(seconds=pipeline.settings.clock_skew_seconds)
    timeout = timedelta(seconds=pipeline.settings.create_timeout_seconds)
    with pipeline.sessions.begin() as session:
        for batch_id in reconcile_sql.stale_submissions(session, now - timeout - margin):
            if submit_sql.record_outcome_unknown(session, batch_id, "create never recorded", now):
                report.marked_unknown.append(batch_id)
        since = reconcile_sql.earliest_open_submission(session, now - STRAY_HORIZON)
    if since is None:
        return report
    try:
        window = Window(now, api_offset(now, pipeline.api.server_time()), margin, timeout)
        remotes = list(pipeline.api.list_recent(window.api_time(since) - margin))
    except ApiUnavailable as exc:
        log.warning("reconcile could not list batches, next run retries: %s", exc)
        return report
    report.api_offset = window.offset
    with pipeline.sessions.begin() as session:
        sizes = reconcile_sql.open_intent_sizes(session, now - STRAY_HORIZON)
        _track_unknown_remotes(session, remotes, sizes, window, report)
        _release_settled_intents(session, window, report)
    return report


def _track_unknown_remotes(
    session: Session,
    remotes: list[RemoteBatch],
    sizes: set[int],
    window: Window,
    report: ReconcileReport,
) -> None:
    known = reconcile_sql.known_remote_ids(session, [r.id for r in remotes])
    for remote in remotes:
        if remote.id in known or not window.ripe(remote):
            continue
        if remote.request_count not in sizes:
            report.other_sizes += 1
            continue
        reconcile_sql.insert_stray_batch(session, remote, window.now)
        report.tracked.append(remote.id)
        log.warning(
            "remote batch %s (%d requests) is not one SQL knows: tracked until its results"
            " say whose it is",
            remote.id,
            remote.request_count,
            extra={"remote_id": remote.id},
        )


def _release_settled_intents(session: Session, window: Window, report: ReconcileReport) -> None:
    pending = reconcile_sql.found_batches_pending(session)
    for intent in reconcile_sql.unknown_intents(session):
        if intent.held and not _past_finding(intent, pending, window):
            continue
        reason = (
            "create outcome unknown; its requests were found in remote batches"
            if not intent.held
            else "create outcome unknown; no remote batch holds its requests"
        )
        if submit_sql.release_batch(
            session, intent.batch_id, [BatchState.UNKNOWN], reason, window.now
        ):
            report.released.append(intent.batch_id)
            log.warning(
                "batch %d released (%d requests go round again uncharged): %s",
                intent.batch_id,
                intent.held,
                reason,
                extra={"batch_id": intent.batch_id},
            )


def _past_finding(
    intent: reconcile_sql.UnknownIntent,
    pending: list[tuple[int, datetime | None]],
    window: Window,
) -> bool:
    """Whether nothing this intent's create made can still turn up: the create is
    long past (any batch it made is tracked by now), and no tracked batch that
    might be it (same size, made since it started) is still unread."""
    started = intent.submit_started_at
    if started is None:
        return True
    settle = window.create_timeout + window.margin
    if started >= window.now - 2 * settle:
        return False
    earliest = window.api_time(started) - window.margin
    return not any(
        count == intent.request_count and (created is None or created >= earliest)
        for count, created in pending
    )
