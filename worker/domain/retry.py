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
