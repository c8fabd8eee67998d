"""The retry policy as one table: every failure kind, and what batchline does about it."""

from __future__ import annotations

import pytest
import redis
from sqlalchemy.exc import OperationalError

from batchline.adapters.anthropic_api import call_failure, create_failure
from batchline.adapters.batch_api import (
    ApiUnavailable,
    CreateNotAccepted,
    CreateOutcomeUnknown,
    CreateRefused,
    RemoteBatchGone,
)
from batchline.adapters.failures import failure_of
from batchline.domain.retry import (
    MAX_BACKOFF_SECONDS,
    Action,
    Decision,
    Failure,
    decide,
    result_failure,
)
from batchline.domain.states import RequestState as S
from batchline.services.ingest_lease import DeadlinePassed, DownloadStopped

QUEUED_AGAIN = Decision(Action.RETRY_NOW, S.QUEUED)
BILLING = Decision(Action.PAUSE_SUBMISSION, S.QUEUED, charge=False)

# kind -> (decision at attempt 1 of 3, decision at attempt 3 of 3). Creates are
# told their try (1, then 3) with no retry-after: 2 s, then 8 s.
TABLE: dict[Failure, tuple[Decision, Decision]] = {
    Failure.RESULT_CANCELED: (Decision(Action.FAIL, S.CANCELED),) * 2,
    Failure.RESULT_EXPIRED: (QUEUED_AGAIN, Decision(Action.FAIL, S.EXPIRED)),
    Failure.RESULT_TRANSIENT_ERROR: (QUEUED_AGAIN, Decision(Action.FAIL, S.FAILED)),
    Failure.RESULT_BILLING_ERROR: (BILLING, BILLING),
    Failure.RESULT_REQUEST_ERROR: (Decision(Action.FAIL, S.FAILED),) * 2,
    Failure.RESULT_MALFORMED: (Decision(Action.FAIL, S.FAILED),) * 2,
    Failure.RESULT_MISSING: (QUEUED_AGAIN, Decision(Action.FAIL, S.FAILED)),
    Failure.CREATE_RATE_LIMITED: (
        Decision(Action.RETRY_LATER, delay=2.0),
        Decision(Action.RETRY_LATER, delay=8.0),
    ),
    Failure.CREATE_OVERLOADED: (
        Decision(Action.RETRY_LATER, delay=2.0),
        Decision(Action.RETRY_LATER, delay=8.0),
    ),
    Failure.CREATE_KEY_REFUSED: (Decision(Action.PAUSE_SUBMISSION),) * 2,
    Failure.CREATE_BILLING_REFUSED: (Decision(Action.PAUSE_SUBMISSION),) * 2,
    Failure.CREATE_INVALID: (Decision(Action.FAIL),) * 2,
    Failure.CREATE_SERVER_ERROR: (Decision(Action.RECONCILE),) * 2,
    Failure.CREATE_NO_ANSWER: (Decision(Action.RECONCILE),) * 2,
    Failure.CALL_UNAVAILABLE: (Decision(Action.NEXT_SWEEP),) * 2,
    Failure.CALL_REFUSED: (Decision(Action.ESCALATE),) * 2,
    Failure.BATCH_GONE: (Decision(Action.WRITE_OFF),) * 2,
    Failure.DOWNLOAD_DEADLINE: (Decision(Action.BACK_OFF),) * 2,
    Failure.DOWNLOAD_LEASE_LOST: (Decision(Action.STOP),) * 2,
    Failure.DATABASE_UNAVAILABLE: (Decision(Action.NEXT_SWEEP),) * 2,
    Failure.REDIS_UNAVAILABLE: (Decision(Action.NEXT_SWEEP),) * 2,
}


def test_retry_policy__the_table_names_every_kind() -> None:
    assert set(TABLE) == set(Failure)


@pytest.mark.parametrize("kind", list(Failure))
def test_retry_policy__decide(kind: Failure) -> None:
    first, last = TABLE[kind]
    assert decide(kind, attempt=1, max_attempts=3) == first
    assert decide(kind, attempt=3, max_attempts=3) == last


@pytest.mark.parametrize(
    ("tries", "retry_after", "delay"),
    [(1, None, 2.0), (4, None, 16.0), (4, 30.0, 30.0), (12, None, MAX_BACKOFF_SECONDS)],
)
def test_retry_policy__a_create_waits_exponentially_and_never_sooner_than_asked(
    tries: int, retry_after: float | None, delay: float
) -> None:
    decision = decide(Failure.CREATE_RATE_LIMITED, tries, retry_after=retry_after)
    assert decision == Decision(Action.RETRY_LATER, delay=delay)


@pytest.mark.parametrize(
    ("result_type", "error_type", "kind"),
    [
        ("succeeded", None, None),
        ("canceled", None, Failure.RESULT_CANCELED),
        ("expired", None, Failure.RESULT_EXPIRED),
        ("errored", "overloaded_error", Failure.RESULT_TRANSIENT_ERROR),
        ("errored", "api_error", Failure.RESULT_TRANSIENT_ERROR),
        ("errored", "timeout_error", Failure.RESULT_TRANSIENT_ERROR),
        ("errored", "rate_limit_error", Failure.RESULT_TRANSIENT_ERROR),
        ("errored", "billing_error", Failure.RESULT_BILLING_ERROR),
        ("errored", "invalid_request_error", Failure.RESULT_REQUEST_ERROR),
        ("errored", "authentication_error", Failure.RESULT_REQUEST_ERROR),
        ("malformed", "result_too_large", Failure.RESULT_MALFORMED),
        ("malformed", "billing_error", Failure.RESULT_MALFORMED),
        ("mystery", None, Failure.RESULT_MALFORMED),
    ],
)
def test_retry_policy__result_lines_are_named(
    result_type: str, error_type: str | None, kind: Failure | None
) -> None:
    assert result_failure(result_type, error_type) == kind


@pytest.mark.parametrize(
    ("status", "error_type", "kind"),
    [
        (429, "rate_limit_error", Failure.CREATE_RATE_LIMITED),
        (529, "overloaded_error", Failure.CREATE_OVERLOADED),
        (401, "authentication_error", Failure.CREATE_KEY_REFUSED),
        (403, "permission_error", Failure.CREATE_KEY_REFUSED),
        (402, "billing_error", Failure.CREATE_BILLING_REFUSED),
        (400, "spend_limit_exceeded", Failure.CREATE_BILLING_REFUSED),
        (400, "invalid_request_error", Failure.CREATE_INVALID),
        (413, "request_too_large", Failure.CREATE_INVALID),
        (404, "not_found_error", Failure.CREATE_INVALID),
        (408, "timeout_error", Failure.CREATE_SERVER_ERROR),
        (409, "conflict", Failure.CREATE_SERVER_ERROR),
        (500, "api_error", Failure.CREATE_SERVER_ERROR),
        (503, "api_error", Failure.CREATE_SERVER_ERROR),
    ],
)
def test_retry_policy__create_statuses_are_named(
    status: int, error_type: str, kind: Failure
) -> None:
    assert create_failure(status, error_type) is kind


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (404, Failure.BATCH_GONE),
        (408, Failure.CALL_UNAVAILABLE),
        (409, Failure.CALL_UNAVAILABLE),
        (429, Failure.CALL_UNAVAILABLE),
        (500, Failure.CALL_UNAVAILABLE),
        (529, Failure.CALL_UNAVAILABLE),
        (400, Failure.CALL_REFUSED),
        (401, Failure.CALL_REFUSED),
        (403, Failure.CALL_REFUSED),
    ],
)
def test_retry_policy__call_statuses_are_named(status: int, kind: Failure) -> None:
    assert call_failure(status) is kind


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ApiUnavailable("HTTP 503"), Failure.CALL_UNAVAILABLE),
        (RemoteBatchGone("HTTP 404"), Failure.BATCH_GONE),
        (CreateNotAccepted("HTTP 429", retry_after=3), Failure.CREATE_RATE_LIMITED),
        (CreateRefused("HTTP 400"), Failure.CREATE_INVALID),
        (CreateRefused("HTTP 402", pause=True), Failure.CREATE_BILLING_REFUSED),
        (CreateOutcomeUnknown("reset"), Failure.CREATE_NO_ANSWER),
        (OperationalError("SELECT 1", {}, Exception("down")), Failure.DATABASE_UNAVAILABLE),
        (redis.ConnectionError("refused"), Failure.REDIS_UNAVAILABLE),
        (redis.TimeoutError("slow"), Failure.REDIS_UNAVAILABLE),
        (ConnectionResetError("reset"), Failure.REDIS_UNAVAILABLE),
        (ValueError("a bug"), None),
    ],
)
def test_retry_policy__exceptions_carry_their_kind(exc: Exception, kind: Failure | None) -> None:
    assert failure_of(exc) == kind


def test_retry_policy__a_stopped_download_says_why() -> None:
    assert DeadlinePassed("slow").kind is Failure.DOWNLOAD_DEADLINE
    assert DownloadStopped("taken").kind is Failure.DOWNLOAD_LEASE_LOST
