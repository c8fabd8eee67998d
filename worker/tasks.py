"""Thin Celery tasks: stable names, ids as arguments, one service call each.

A failure is logged and left for the next beat sweep, which finds the same
work in SQL; nothing is retried with a countdown (ETA tasks loop on Redis).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial, wraps
from typing import Any, TypeVar

from batchline import runtime
from batchline.adapters.failures import failure_of
from batchline.celery_app import app
from batchline.domain.pauses import KEY, pause_kind
from batchline.domain.retry import Action, decide
from batchline.services import (
    assemble,
    callbacks,
    fallback,
    ingest,
    pauses,
    poll,
    reconcile,
    submit,
)
from batchline.services import intake as intake_service

log = logging.getLogger("batchline.tasks")
F = TypeVar("F", bound=Callable[..., Any])


def _left_for_next_sweep(fn: F) -> F:
    """Failures the retry policy leaves for the next sweep are logged and swallowed."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            kind = failure_of(exc)
            if kind is None or decide(kind).action is not Action.NEXT_SWEEP:
                raise
            log.warning("%s: %s; the next sweep retries", fn.__name__, type(exc).__name__)
            return None

    return wrapper  # type: ignore[return-value]


@app.task(name="batchline.intake")
@_left_for_next_sweep
def intake_task() -> int:
    pipeline = runtime.pipeline()

    def assemble_and_submit(only_full: bool = False) -> None:
        assemble.assemble_batches(pipeline, only_full=only_full)
        for batch_id in submit.submit_ready_batches(pipeline):
            submit_batch_task.delay(batch_id)

    # A batch that fills up mid-run is cut and its submit sent at once, so
    # another worker sends it while this one takes in the rest; only full ones
    # (see assemble_batches), what has waited its maximum goes at the end.
    moved = intake_service.run_intake(
        pipeline, runtime.consumer_name(), when_full=partial(assemble_and_submit, only_full=True)
    )
    assemble_and_submit()
    return moved


@app.task(name="batchline.submit_batch")
@_left_for_next_sweep
def submit_batch_task(batch_id: int) -> str:
    outcome = submit.submit_batch(runtime.pipeline(), batch_id)
    if outcome == "submitted":
        # A first look straight away rather than at a sweep up to two poll
        # intervals off: a small batch (or the emulator's) may have ended already.
        # One retrieve per batch; later looks back off from its age (domain.polling).
        poll_batch_task.delay(batch_id)
    return outcome


def _send_callback(task_name: str, request_id: str) -> None:
    app.send_task(task_name, args=[request_id], queue=runtime.settings().callback_queue)


@app.task(name="batchline.sweep")
@_left_for_next_sweep
def sweep_task() -> None:
    pipeline = runtime.pipeline()
    callbacks.dispatch_callbacks(pipeline, _send_callback)
    for batch_id in poll.lease_due_polls(pipeline):
        poll_batch_task.delay(batch_id)
    for batch_id in poll.batches_for_free_slots(pipeline):
        ingest_batch_task.delay(batch_id)
    for batch_id in submit.submit_ready_batches(pipeline):
        submit_batch_task.delay(batch_id)


@app.task(name="batchline.poll_batch")
@_left_for_next_sweep
def poll_batch_task(batch_id: int) -> bool:
    ended = poll.poll_batch(runtime.pipeline(), batch_id)
    if ended:
        ingest_batch_task.delay(batch_id)
    return ended


@app.task(name="batchline.ingest_batch")
@_left_for_next_sweep
def ingest_batch_task(batch_id: int) -> int | None:
    pipeline = runtime.pipeline()
    report = ingest.ingest_batch(pipeline, batch_id)
    # Straight away rather than at the next sweep: applications wait on these.
    callbacks.dispatch_callbacks(pipeline, _send_callback)
    if report is None:
        return None
    # This download's slot is free: an ended batch that found none goes now, not
    # at the next sweep. (Only after a download, so tasks that found no slot
    # never wake each other in a loop.)
    for waiting in poll.batches_for_free_slots(pipeline, besides=batch_id):
        ingest_batch_task.delay(waiting)
    return report.lines


@app.task(name="batchline.reconcile")
@_left_for_next_sweep
def reconcile_task() -> None:
    pipeline = runtime.pipeline()
    still = pauses.clear_key_pause(pipeline)
    if still is not None and pause_kind(still) == KEY:
        # The API refuses this key: listing batches would only log the same
        # refusal every run. The pause was logged once, when it began.
        return
    reconcile.reconcile(pipeline)


@app.task(name="batchline.deadlines")
@_left_for_next_sweep
def deadlines_task() -> int:
    """Send requests whose deadline is near through the synchronous API."""
    pipeline = runtime.pipeline()
    assert pipeline.messages is not None
    report = fallback.run_fallbacks(pipeline, pipeline.messages)
    if report.settled:
        callbacks.dispatch_callbacks(pipeline, _send_callback)
    if report.batches_canceled:
        for batch_id in poll.lease_due_polls(pipeline):
            poll_batch_task.delay(batch_id)
    return report.settled
