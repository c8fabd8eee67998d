"""Errors in the API's JSON shape, and the one place enqueue's refusals map to statuses."""

from __future__ import annotations

from starlette.responses import JSONResponse

from batchline.domain.validation import InvalidRequest
from batchline.errors import BrokerUnavailable, QueueFull

# A full intake queue is refused as the API refuses a busy client: 429 and when to retry.
QUEUE_FULL_STATUS = 429
QUEUE_FULL_RETRY_AFTER_SECONDS = 5
# Redis (the queue) unreachable or not answering: the service, not the client, is at fault.
BROKER_DOWN_STATUS = 503
BROKER_DOWN_RETRY_AFTER_SECONDS = 10


class ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.retry_after = retry_after

    def response(self) -> JSONResponse:
        headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
        body = {"type": "error", "error": {"type": self.kind, "message": self.message}}
        return JSONResponse(body, status_code=self.status, headers=headers)


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


def from_enqueue(exc: Exception) -> ApiError | None:
    """What an exception out of enqueue means to an HTTP client; None: not ours to map."""
    if isinstance(exc, InvalidRequest):
        return invalid(str(exc))
    if isinstance(exc, QueueFull):
        return ApiError(
            QUEUE_FULL_STATUS, "rate_limit_error", str(exc), QUEUE_FULL_RETRY_AFTER_SECONDS
        )
    if isinstance(exc, BrokerUnavailable):
        return ApiError(
            BROKER_DOWN_STATUS,
            "api_error",
            "the intake queue is unavailable; retry later",
            BROKER_DOWN_RETRY_AFTER_SECONDS,
        )
    return None
