"""Submission: call create for a committed intent, and record what came of it."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from batchline import ledger
from batchline.adapters import spending
from batchline.adapters.batch_api import CreateError, CreateOutcomeUnknown, RemoteBatch
from batchline.adapters.sql import controls as controls_sql
from batchline.adapters.sql import reconcile as reconcile_sql
from batchline.adapters.sql import rows as rows_sql
from batchline.adapters.sql import submit as submit_sql
from batchline.database import READ_ONLY
from batchline.domain.pauses import describe as describe_pause
from batchline.domain.polling import next_poll_delay
from batchline.domain.retry import Action, Decision, Failure, decide
from batchline.domain.states import BatchMoves
from batchline.services import capacity
from batchline.services.context import Pipeline

log = logging.getLogger("batchline.submit")


def submit_ready_batches(pipeline: Pipeline) -> list[int]:
    with pipeline.sessions.begin() as session:
        if controls_sql.submission_paused(session) is not None:
            return []
        # Only batches the in-flight capacity admits now: one that must wait would
        # be handed out every tick only to be told so (a hint: submit_batch decides
        # under the capacity lock).
        fits = capacity.submit_room(session, pipeline.settings.max_in_flight_requests)
        ready = submit_sql.batches_ready_to_submit(session, pipeline.clock(), max_requests=fits)
        cap = pipeline.settings.daily_spend_cap_usd
        if cap <= 0 or not ready:
            return ready
        # Only batches that may fit: a waiting one is not handed out every tick.
        # (A hint: submit_batch decides under the cap's lock.)
        return spending.may_fit(session, ready, ledger.cap_use(session, cap, pipeline.clock()).room)


def submit_batch(pipeline: Pipeline, batch_id: int) -> str:
    """Create the remote batch for one intent; returns what happened, in a word."""
    now = pipeline.clock()
    cap = pipeline.settings.daily_spend_cap_usd
    # Under a cap, bound the batch before taking the cap's lock (it reads every body).
    worst = _worst_case(pipeline, batch_id) if cap > 0 else None
    with pipeline.sessions.begin() as session:
        if controls_sql.submission_paused(session) is not None:
            return "paused"
        # Admitted under the capacity lock, held until SUBMITTING commits below.
        full = capacity.admit(session, batch_id, pipeline.settings.max_in_flight_requests, now)
        if full is not None:
            log.info("%s", full, extra={"batch_id": batch_id})
            return "capacity"
        # Reserve before create: the reservation commits with the move to
        # SUBMITTING below, under the cap's lock, so no room is promised twice.
        waiting = ledger.reserve(session, batch_id, worst, cap, now) if worst is not None else None
        if waiting is not None:
            log.info("%s", waiting, extra={"batch_id": batch_id})
            return "capped"
        # The intent is committed before create is called: a crash after this
        # line leaves a SUBMITTING row for the reconciler, never a silent batch.
        if not submit_sql.begin_submission(session, batch_id, now):
            return "not-ready"
        batch = rows_sql.get_batch(session, batch_id)
        tries = batch.submit_tries if batch else 1
        deployment = controls_sql.deployment_name(session, pipeline.settings.deployment, now)
    try:
        with pipeline.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            betas = submit_sql.batch_betas(conn, batch_id)
            remote = pipeline.api.create(
                submit_sql.iter_batch_body(conn, batch_id, deployment), betas
            )
    except CreateError as exc:
        decision = decide(exc.kind, tries, retry_after=exc.retry_after)
        return _failed(pipeline, batch_id, exc, decision, now)
    except Exception as exc:
        # Anything else (the database failing mid-body, a bug): the POST may or
        # may not have completed, so the reconciler must settle it.
        failure = CreateOutcomeUnknown(f"{type(exc).__name__}: {exc}")
        return _failed(pipeline, batch_id, failure, decide(failure.kind), now)
    return _created(pipeline, batch_id, remote)


def _worst_case(pipeline: Pipeline, batch_id: int) -> Decimal | str:
    with pipeline.sessions() as session:
        stored = spending.stored_worst_case(session, batch_id)
    if stored is not None:
        return stored
    with pipeline.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        return ledger.batch_worst_case(conn, batch_id)


def _created(pipeline: Pipeline, batch_id: int, remote: RemoteBatch) -> str:
    now = pipeline.clock()
    # Soon, then backing off (domain.polling): a batch that ends quickly is seen quickly.
    first = next_poll_delay(0.0, pipeline.settings.poll_interval_seconds)
    next_poll = now + timedelta(seconds=first)
    with pipeline.sessions.begin() as session:
        if reconcile_sql.known_remote_ids(session, [remote.id]):
            # An answer so late the reconciler found its batch first: that batch's
            # results claim the requests, as for any create whose answer was lost.
            submit_sql.record_outcome_unknown(
                session, batch_id, "answer came after its batch was found", now
            )
            return "tracked"
        if submit_sql.record_submission(session, batch_id, remote, now, next_poll):
            capacity.after_created(session, pipeline.settings.max_in_flight_requests, now)
            log.info(
                "batch %d submitted as %s",
                batch_id,
                remote.id,
                extra={"batch_id": batch_id, "remote_id": remote.id},
            )
            return "submitted"
        # The reconciler got here first and judged the outcome unknown.
        # The answer itself is the evidence: this intent's create made this batch.
        if submit_sql.adopt_remote(session, batch_id, remote, now):
            return "submitted"
        reconcile_sql.insert_stray_batch(session, remote, now)
    log.error(
        "batch %d was created as %s after being released: tracked as stray",
        batch_id,
        remote.id,
        extra={"batch_id": batch_id, "remote_id": remote.id},
    )
    return "stray"


def _failed(
    pipeline: Pipeline, batch_id: int, exc: CreateError, decision: Decision, began: datetime
) -> str:
    """Carry out the retry policy's decision on a create that made no known batch."""
    if decision.action is Action.RETRY_LATER:
        return _retry_later(pipeline, batch_id, exc, began, decision.delay or 0.0)
    if decision.action is Action.PAUSE_SUBMISSION:
        return _paused(pipeline, batch_id, str(exc))
    if decision.action is Action.FAIL:
        return _refused(pipeline, batch_id, str(exc))
    if decision.action is Action.RECONCILE:
        return _unknown(pipeline, batch_id, str(exc))
    raise AssertionError(f"no create failure is decided {decision.action}")


def _retry_later(
    pipeline: Pipeline, batch_id: int, exc: CreateError, began: datetime, wait: float
) -> str:
    # The wait counts from when this submission began.
    retry_at = began + timedelta(seconds=wait)
    with pipeline.sessions.begin() as session:
        submit_sql.record_create_not_accepted(
            session, batch_id, str(exc), retry_at, pipeline.clock()
        )
        if exc.kind is Failure.CREATE_RATE_LIMITED:
            _lower_capacity(pipeline, session, batch_id)
    log.warning(
        "batch %d not accepted, retry in %.0fs: %s",
        batch_id,
        wait,
        exc,
        extra={"batch_id": batch_id},
    )
    return "not-accepted"


def _lower_capacity(pipeline: Pipeline, session: Session, batch_id: int) -> None:
    lowered = capacity.after_rate_limited(
        session, pipeline.settings.max_in_flight_requests, pipeline.clock()
    )
    if lowered is not None:
        log.warning(
            "create of batch %d answered 429: effective in-flight limit now %d",
            batch_id,
            lowered,
            extra={"batch_id": batch_id},
        )


def _paused(pipeline: Pipeline, batch_id: int, reason: str) -> str:
    now = pipeline.clock()
    with pipeline.sessions.begin() as session:
        controls_sql.pause_submission(session, reason, now)
        submit_sql.release_batch(session, batch_id, BatchMoves.CREATE_PAUSED, reason, now)
    log.error("%s", describe_pause(reason), extra={"batch_id": batch_id})
    return "paused"


def _refused(pipeline: Pipeline, batch_id: int, reason: str) -> str:
    with pipeline.sessions.begin() as session:
        submit_sql.refuse_batch(session, batch_id, reason, pipeline.clock())
    log.error("batch %d refused: %s", batch_id, reason, extra={"batch_id": batch_id})
    return "refused"


def _unknown(pipeline: Pipeline, batch_id: int, reason: str) -> str:
    with pipeline.sessions.begin() as session:
        submit_sql.record_outcome_unknown(session, batch_id, reason, pipeline.clock())
    log.warning(
        "batch %d create outcome unknown (%s): the reconciler will settle it",
        batch_id,
        reason,
        extra={"batch_id": batch_id},
    )
    return "unknown"
