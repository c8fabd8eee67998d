"""What becomes of a request once one of its batch results is known."""

from __future__ import annotations

from dataclasses import dataclass

from batchline.domain.states import RequestState

# Error types inside an errored result that another attempt may cure.
RETRIABLE_ERRORS = frozenset({"api_error", "overloaded_error", "timeout_error", "rate_limit_error"})
# Error types that mean the account cannot spend: retrying only burns attempts.
BILLING_ERRORS = frozenset({"billing_error"})


@dataclass(frozen=True)
class Outcome:
    """The request's next state, and whether submission must pause."""

    next_state: RequestState
    pause_submission: bool = False

    @property
    def retry(self) -> bool:
        return self.next_state is RequestState.QUEUED


def decide(result_type: str, error_type: str | None, attempt: int, max_attempts: int) -> Outcome:
    """Map one result to the request's next state.

    `attempt` is how many attempts this request has used up counting this one
    (1-based; attempts lost to billing or to a batch never created do not count).
    Unknown result types are final failures, never a crash.
    """
    can_retry = attempt < max_attempts
    if result_type == "succeeded":
        return Outcome(RequestState.SUCCEEDED)
    if result_type == "canceled":
        return Outcome(RequestState.CANCELED)
    if result_type == "expired":
        return Outcome(RequestState.QUEUED if can_retry else RequestState.EXPIRED)
    if result_type == "errored":
        if error_type in BILLING_ERRORS:
            # Not the request's fault: it goes back without using up an attempt's worth
            # of hope, and submission pauses until someone fixes billing.
            return Outcome(RequestState.QUEUED, pause_submission=True)
        if error_type in RETRIABLE_ERRORS and can_retry:
            return Outcome(RequestState.QUEUED)
        return Outcome(RequestState.FAILED)
    return Outcome(RequestState.FAILED)


# Statuses of a synchronous Messages call that another try may cure (529: overloaded).
SYNC_RETRIABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
# Waits between synchronous tries without a retry-after: short, as a deadline is near.
SYNC_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 4.0)


def sync_retry_delay(
    status: int | None, retry_after: float | None, tries: int, seconds_to_deadline: float
) -> float | None:
    """Seconds to wait before the synchronous fallback tries again, or None to give
    up (the request is left for its batch to finish).

    `status` is the HTTP status (None: no answer, e.g. a timeout or a dropped
    connection); `tries` counts the tries made so far, this one included. A
    429's retry-after is honoured; a retry that could not start before the
    deadline is not made, since by then the batch result is as good.
    """
    if status is not None and status not in SYNC_RETRIABLE_STATUSES:
        return None
    if tries > len(SYNC_BACKOFF_SECONDS):
        return None
    wait = SYNC_BACKOFF_SECONDS[tries - 1]
    if retry_after is not None and retry_after >= 0:
        wait = retry_after
    return wait if wait < seconds_to_deadline else None
