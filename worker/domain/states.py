"""The request and batch state machines, as plain data.

Every move the pipeline makes is one named `Move` below (a source state and a
target state); the transition tables are derived from them, and the SQL adapter
takes each guarded update's source state from the move it performs (see
`batchline.adapters.sql`). A move not written here cannot be made.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar


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

S = TypeVar("S", RequestState, BatchState)


@dataclass(frozen=True)
class Move(Generic[S]):
    """One allowed change of state: rows in `source` may move to `target`."""

    source: S
    target: S


class BatchMoves:
    """Every move a batch makes, named by what causes it."""

    BEGIN_SUBMIT = Move(BatchState.PREPARED, BatchState.SUBMITTING)
    CREATE_ACCEPTED = Move(BatchState.SUBMITTING, BatchState.SUBMITTED)
    # A 429, 5xx or timeout before the request was sent: try again later.
    CREATE_NOT_ACCEPTED = Move(BatchState.SUBMITTING, BatchState.PREPARED)
    CREATE_OUTCOME_LOST = Move(BatchState.SUBMITTING, BatchState.UNKNOWN)
    CREATE_REFUSED = Move(BatchState.SUBMITTING, BatchState.REFUSED)
    # A refusal that pauses submission (billing): the requests wait in the queue.
    CREATE_PAUSED = Move(BatchState.SUBMITTING, BatchState.RELEASED)
    # The reconciler (or the late answer itself) found the remote batch.
    ADOPTED = Move(BatchState.UNKNOWN, BatchState.SUBMITTED)
    # No remote batch holds the requests (any more): they go round again.
    UNKNOWN_RELEASED = Move(BatchState.UNKNOWN, BatchState.RELEASED)
    # A poll saw it end, or the API no longer knows it.
    ENDED = Move(BatchState.SUBMITTED, BatchState.ENDED)
    INGESTED = Move(BatchState.ENDED, BatchState.INGESTED)


class RequestMoves:
    """Every move a request makes, named by what causes it."""

    CLAIMED = Move(RequestState.QUEUED, RequestState.IN_BATCH)
    CANCELED_WHILE_QUEUED = Move(RequestState.QUEUED, RequestState.CANCELED)
    # A retry, or a batch that was never created remotely.
    BACK_TO_QUEUE = Move(RequestState.IN_BATCH, RequestState.QUEUED)
    SUCCEEDED = Move(RequestState.IN_BATCH, RequestState.SUCCEEDED)
    FAILED = Move(RequestState.IN_BATCH, RequestState.FAILED)
    CANCELED = Move(RequestState.IN_BATCH, RequestState.CANCELED)
    EXPIRED = Move(RequestState.IN_BATCH, RequestState.EXPIRED)
    # An operator's retry (CLI `retry`, dashboard): a fresh budget of attempts.
    FAILED_REQUEUED = Move(RequestState.FAILED, RequestState.QUEUED)
    EXPIRED_REQUEUED = Move(RequestState.EXPIRED, RequestState.QUEUED)
    # A deadline's synchronous fallback answered it before it was batched.
    ANSWERED_WHILE_QUEUED = Move(RequestState.QUEUED, RequestState.SUCCEEDED)


BATCH_MOVES: tuple[Move[BatchState], ...] = tuple(
    m for m in vars(BatchMoves).values() if isinstance(m, Move)
)
REQUEST_MOVES: tuple[Move[RequestState], ...] = tuple(
    m for m in vars(RequestMoves).values() if isinstance(m, Move)
)

BATCH_TRANSITIONS: dict[BatchState, frozenset[BatchState]] = {
    state: frozenset(m.target for m in BATCH_MOVES if m.source == state) for state in BatchState
}
REQUEST_TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    state: frozenset(m.target for m in REQUEST_MOVES if m.source == state) for state in RequestState
}


def can_move_request(src: RequestState, dst: RequestState) -> bool:
    return dst in REQUEST_TRANSITIONS[src]


def can_move_batch(src: BatchState, dst: BatchState) -> bool:
    return dst in BATCH_TRANSITIONS[src]


def request_move(src: RequestState, dst: RequestState) -> Move[RequestState]:
    """The named move from `src` to `dst`; ValueError when the table has none."""
    for move in REQUEST_MOVES:
        if move.source == src and move.target == dst:
            return move
    raise ValueError(f"a request may not move from {src} to {dst}")


def batch_sources(target: BatchState) -> frozenset[BatchState]:
    """The states a batch may move to `target` from."""
    return frozenset(m.source for m in BATCH_MOVES if m.target == target)


def batch_states_leading_to(target: BatchState) -> frozenset[BatchState]:
    """The states from which some sequence of moves reaches `target`."""
    found: set[BatchState] = set()
    frontier = {target}
    while frontier:
        frontier = {s for t in frontier for s in batch_sources(t)} - found
        found |= frontier
    return frozenset(found)
