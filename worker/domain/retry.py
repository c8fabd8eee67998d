"""The retry policy: what batchline does about each kind of failure, decided once.

Every failure the pipeline meets is first named as a `Failure` kind by the code
that saw it (the result parser, the API adapter, the task edge); `decide` maps
the kind to a `Decision`; the services only carry the decision out. A new kind
of failure (say, the synchronous fallback's 429) is one enum member and one
row in `_RULES`, and the table test in tests/unit/test_retry_policy.py fails
until it has a row there too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from batchline.domain.states import RequestState

# Error types inside an errored result that another attempt may cure.
RETRIABLE_ERRORS = frozenset({"api_error", "overloaded_error", "timeout_error", "rate_limit_error"})
# Error types that mean the account cannot spend: retrying only burns attempts.
BILLING_ERRORS = frozenset({"billing_error"})
# The longest a create waits before its next try, whatever the number of tries.
MAX_BACKOFF_SECONDS = 300.0


class Failure(StrEnum):
    """What went wrong, named by the layer that saw it."""

    # One request's line in an ended batch's results.
    RESULT_CANCELED = "result_canceled"  # the batch was canceled before it ran
    RESULT_EXPIRED = "result_expired"  # the batch expired before it ran
    RESULT_TRANSIENT_ERROR = "result_transient_error"  # an error type in RETRIABLE_ERRORS
    RESULT_BILLING_ERROR = "result_billing_error"  # an error type in BILLING_ERRORS
    RESULT_REQUEST_ERROR = "result_request_error"  # any other error type (the request's fault)
    RESULT_MALFORMED = "result_malformed"  # unknown type, missing fields, too long, unstorable
    RESULT_MISSING = "result_missing"  # the stream ended with no readable line for it
    # Creating a batch (POST /v1/messages/batches, never retried by the SDK).
    CREATE_RATE_LIMITED = "create_rate_limited"  # 429: nothing created
    CREATE_OVERLOADED = "create_overloaded"  # 529: nothing created
    CREATE_KEY_REFUSED = "create_key_refused"  # 401, 403
    CREATE_BILLING_REFUSED = "create_billing_refused"  # 402, a spend limit
    CREATE_INVALID = "create_invalid"  # any other 4xx: this body will never be accepted
    CREATE_SERVER_ERROR = "create_server_error"  # 5xx, 408, 409: may have been created
    CREATE_NO_ANSWER = "create_no_answer"  # connection lost, unreadable answer, anything else
    # Retrieve, list, cancel and the results download.
    CALL_UNAVAILABLE = "call_unavailable"  # connection, 408, 409, 429, 5xx, not a batch
    CALL_REFUSED = "call_refused"  # any other 4xx but 404 (a refused key, a bug)
    BATCH_GONE = "batch_gone"  # 404: deleted, or results archived after 29 days
    DOWNLOAD_DEADLINE = "download_deadline"  # BATCHLINE_INGEST_DEADLINE_SECONDS passed
    DOWNLOAD_LEASE_LOST = "download_lease_lost"  # another worker took the ingestion lease
    # batchline's own stores, seen at the task edge.
    DATABASE_UNAVAILABLE = "database_unavailable"
    REDIS_UNAVAILABLE = "redis_unavailable"


class Action(StrEnum):
    """What the service does."""

    # A request goes back to the queue for another batch (charged unless `charge` is off).
    RETRY_NOW = "retry_now"
    # The same create is tried again after `delay` seconds.
    RETRY_LATER = "retry_later"
    # It ends here with the reason: a request in `next_state`, a create's batch refused.
    FAIL = "fail"
    # Submission stops until the cause is fixed; what failed goes back unharmed.
    PAUSE_SUBMISSION = "pause_submission"
    # A create whose outcome nobody knows: the reconciler settles it from the remote list.
    RECONCILE = "reconcile"
    # Nothing is recorded: the next beat sweep does the same work again.
    NEXT_SWEEP = "next_sweep"
    # The remote batch is gone: what was read stays, its other requests go round again.
    WRITE_OFF = "write_off"
    # The download stops and leaves the batch alone for about half a lease.
    BACK_OFF = "back_off"
    # Another worker has it: stop without a trace.
    STOP = "stop"
    # Not a passing failure: raised as it came, for a person to see.
    ESCALATE = "escalate"


@dataclass(frozen=True)
class Decision:
    action: Action
    # For a request's result: the state it moves to.
    next_state: RequestState | None = None
    # Whether the attempt counts against the request's max_attempts.
    charge: bool = True
    # For RETRY_LATER: seconds to wait before the next try.
    delay: float | None = None

    @property
    def retry(self) -> bool:
        return self.next_state is RequestState.QUEUED

    @property
    def pause_submission(self) -> bool:
        return self.action is Action.PAUSE_SUBMISSION


@dataclass(frozen=True)
class Attempt:
    """How far along the thing that failed is.

    `number`: attempts used up counting this one (1-based); for a request, attempts
    lost to billing or to a batch never created do not count; for a create, its tries.
    """

    number: int = 1
    max_attempts: int = 1
    # Seconds the API asked us to wait (its retry-after header), if it said.
    retry_after: float | None = None

    @property
    def can_retry(self) -> bool:
        return self.number < self.max_attempts


def decide(
    kind: Failure, attempt: int = 1, max_attempts: int = 1, retry_after: float | None = None
) -> Decision:
    """What to do about one failure of this kind, at this attempt."""
    return _RULES[kind](Attempt(attempt, max_attempts, retry_after))


def result_failure(result_type: str, error_type: str | None) -> Failure | None:
    """The failure a result line reports; None for a success."""
    if result_type == "succeeded":
        return None
    if result_type == "canceled":
        return Failure.RESULT_CANCELED
    if result_type == "expired":
        return Failure.RESULT_EXPIRED
    if result_type != "errored":
        # 'malformed' (see domain.results) and any type this code does not know.
        return Failure.RESULT_MALFORMED
    if error_type in BILLING_ERRORS:
        return Failure.RESULT_BILLING_ERROR
    if error_type in RETRIABLE_ERRORS:
        return Failure.RESULT_TRANSIENT_ERROR
    return Failure.RESULT_REQUEST_ERROR


def _retry_or(final: RequestState) -> Rule:
    def rule(attempt: Attempt) -> Decision:
        if attempt.can_retry:
            return Decision(Action.RETRY_NOW, RequestState.QUEUED)
        return Decision(Action.FAIL, final)

    return rule


def _fail(final: RequestState) -> Rule:
    return lambda _: Decision(Action.FAIL, final)


def _billing_result(_: Attempt) -> Decision:
    # Not the request's fault: it goes back without using up an attempt, and
    # submission pauses until someone fixes billing.
    return Decision(Action.PAUSE_SUBMISSION, RequestState.QUEUED, charge=False)


def _backoff(attempt: Attempt) -> Decision:
    # Exponential in the create's tries, capped; never sooner than the API asked.
    wait = min(MAX_BACKOFF_SECONDS, 2.0**attempt.number)
    return Decision(Action.RETRY_LATER, delay=max(attempt.retry_after or 0.0, wait))


def _just(action: Action) -> Rule:
    return lambda _: Decision(action)


Rule = Callable[[Attempt], Decision]

_RULES: dict[Failure, Rule] = {
    Failure.RESULT_CANCELED: _fail(RequestState.CANCELED),
    Failure.RESULT_EXPIRED: _retry_or(RequestState.EXPIRED),
    Failure.RESULT_TRANSIENT_ERROR: _retry_or(RequestState.FAILED),
    Failure.RESULT_BILLING_ERROR: _billing_result,
    Failure.RESULT_REQUEST_ERROR: _fail(RequestState.FAILED),
    Failure.RESULT_MALFORMED: _fail(RequestState.FAILED),
    # As if errored: another attempt, so a line that never comes cannot loop forever.
    Failure.RESULT_MISSING: _retry_or(RequestState.FAILED),
    Failure.CREATE_RATE_LIMITED: _backoff,
    Failure.CREATE_OVERLOADED: _backoff,
    Failure.CREATE_KEY_REFUSED: _just(Action.PAUSE_SUBMISSION),
    Failure.CREATE_BILLING_REFUSED: _just(Action.PAUSE_SUBMISSION),
    Failure.CREATE_INVALID: _just(Action.FAIL),
    Failure.CREATE_SERVER_ERROR: _just(Action.RECONCILE),
    Failure.CREATE_NO_ANSWER: _just(Action.RECONCILE),
    Failure.CALL_UNAVAILABLE: _just(Action.NEXT_SWEEP),
    Failure.CALL_REFUSED: _just(Action.ESCALATE),
    Failure.BATCH_GONE: _just(Action.WRITE_OFF),
    Failure.DOWNLOAD_DEADLINE: _just(Action.BACK_OFF),
    Failure.DOWNLOAD_LEASE_LOST: _just(Action.STOP),
    Failure.DATABASE_UNAVAILABLE: _just(Action.NEXT_SWEEP),
    Failure.REDIS_UNAVAILABLE: _just(Action.NEXT_SWEEP),
}


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
