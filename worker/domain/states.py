"""The request and batch state machines, as plain data.

The SQL adapter enforces these with guarded updates (`WHERE state = :expected`);
this module is where the allowed moves are written down once.
"""

from __future__ import annotations

from enum import StrEnum


class RequestState(StrEnum):
    QUEUED = "queued"
    IN_BATCH = "in_batch"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"


TERMINAL_REQUEST_STATES = frozenset(
    {RequestState.SUCCEEDED, RequestState.FAILED, RequestState.CANCELED, RequestState.EXPIRED}
)

REQUEST_TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    RequestState.QUEUED: frozenset({RequestState.IN_BATCH, RequestState.CANCELED}),
    # Back to QUEUED: a retry, or a batch that was never created remotely.
    RequestState.IN_BATCH: frozenset({RequestState.QUEUED} | TERMINAL_REQUEST_STATES),
    RequestState.SUCCEEDED: frozenset(),
    RequestState.FAILED: frozenset(),
    RequestState.CANCELED: frozenset(),
    RequestState.EXPIRED: frozenset(),
}


class BatchState(StrEnum):
    # Intent committed; create not yet called (or known not to have happened).
    PREPARED = "prepared"
    # Create is (or was) in flight; its outcome is not yet known.
    SUBMITTING = "submitting"
    # Create's outcome was lost; the reconciler will adopt a remote batch or release.
    UNKNOWN = "unknown"
    SUBMITTED = "submitted"
    ENDED = "ended"
    INGESTED = "ingested"
    # The API refused the create for good; requests failed with the reason.
    REFUSED = "refused"
    # Never created remotely; its requests went back to the queue.
    RELEASED = "released"


TERMINAL_BATCH_STATES = frozenset({BatchState.INGESTED, BatchState.REFUSED, BatchState.RELEASED})

BATCH_TRANSITIONS: dict[BatchState, frozenset[BatchState]] = {
    BatchState.PREPARED: frozenset({BatchState.SUBMITTING, BatchState.RELEASED}),
    BatchState.SUBMITTING: frozenset(
        {
            BatchState.SUBMITTED,
            BatchState.PREPARED,
            BatchState.UNKNOWN,
            BatchState.REFUSED,
            BatchState.RELEASED,
        }
    ),
    BatchState.UNKNOWN: frozenset({BatchState.SUBMITTED, BatchState.RELEASED}),
    BatchState.SUBMITTED: frozenset({BatchState.ENDED}),
    BatchState.ENDED: frozenset({BatchState.INGESTED}),
    BatchState.INGESTED: frozenset(),
    BatchState.REFUSED: frozenset(),
    BatchState.RELEASED: frozenset(),
}


def can_move_request(src: RequestState, dst: RequestState) -> bool:
    return dst in REQUEST_TRANSITIONS[src]


def can_move_batch(src: BatchState, dst: BatchState) -> bool:
    return dst in BATCH_TRANSITIONS[src]
