"""The API's error shape, and the exception the handlers raise to produce it."""

from __future__ import annotations

from collections.abc import Mapping

STATUS_BY_TYPE: Mapping[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "conflict_error": 409,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

# What an injected HTTP fault of a given status says it is.
TYPE_BY_STATUS: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# Error types an `errored` result may carry: the SDK's `ErrorObject` union
# (not_found_error aside, which a batch request never meets).
RESULT_ERROR_TYPES: tuple[str, ...] = (
    "api_error",
    "overloaded_error",
    "invalid_request_error",
    "rate_limit_error",
    "timeout_error",
    "authentication_error",
    "permission_error",
    "billing_error",
)


class ApiError(Exception):
    """Answered as `{"type": "error", "error": {...}, "request_id": ...}`."""

    def __init__(
        self,
        error_type: str,
        message: str,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status if status is not None else STATUS_BY_TYPE.get(error_type, 500)
        self.headers = dict(headers or {})


def invalid_request(message: str) -> ApiError:
    return ApiError("invalid_request_error", message)


def not_found(message: str) -> ApiError:
    return ApiError("not_found_error", message)


def error_body(error_type: str, message: str, request_id: str) -> dict[str, object]:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }
