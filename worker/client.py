"""A drop-in for the SDK's `messages.create`: it runs through batches, and answers a `Message`.

    client = batchline.AsyncAnthropic()          # was anthropic.AsyncAnthropic()
    message = await client.messages.create(model=..., max_tokens=..., messages=[...])

The request is enqueued (half price, hours of latency at worst) and the call
returns when its result arrives: the SDK's own `anthropic.types.Message`, or
the SDK's exception for the error an errored result carries.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import httpx2 as httpx
from anthropic.types import Message
from anthropic.types.messages import MessageBatchResult

from batchline.producer import Producer, default_producer

# Long enough for a batch that waits its turn; the SDK's own default is 10 minutes.
DEFAULT_TIMEOUT_SECONDS = 24 * 3600.0
_STATUS = {
    "invalid_request_error": (400, anthropic.BadRequestError),
    "authentication_error": (401, anthropic.AuthenticationError),
    "permission_error": (403, anthropic.PermissionDeniedError),
    "not_found_error": (404, anthropic.NotFoundError),
    "request_too_large": (413, anthropic.APIStatusError),
    "rate_limit_error": (429, anthropic.RateLimitError),
    "api_error": (500, anthropic.InternalServerError),
    "overloaded_error": (529, anthropic.InternalServerError),
}
_SDK_ONLY = ("extra_headers", "extra_query", "extra_body", "timeout")


class BatchExpired(anthropic.APIError):
    """The request's batch ended before it ran (after every retry)."""


class BatchCanceled(anthropic.APIError):
    """The request was canceled before it ran."""


def _request() -> httpx.Request:
    return httpx.Request("POST", "https://batchline.invalid/v1/messages/batches")


def to_message(result: MessageBatchResult) -> Message:
    """The succeeded result's `Message`, or the SDK's exception for what happened instead."""
    if result.type == "succeeded":
        return result.message
    if result.type == "errored":
        error = result.error.error
        status, cls = _STATUS.get(error.type, (500, anthropic.APIStatusError))
        body = result.error.model_dump(mode="json")
        response = httpx.Response(status, json=body, request=_request())
        raise cls(f"Error code: {status} - {body}", response=response, body=body)
    if result.type == "expired":
        raise BatchExpired("the request's batch expired before it ran", _request(), body=None)
    raise BatchCanceled("the request was canceled", _request(), body=None)


def _params(params: dict[str, Any]) -> tuple[dict[str, Any], float | None]:
    if params.get("stream"):
        raise ValueError(
            "stream=True cannot go through a batch: batchline returns the whole Message when its "
            "result arrives; call messages.create without it, or stream with anthropic.Anthropic"
        )
    params.pop("stream", None)
    timeout = params.pop("timeout", None)
    for name in _SDK_ONLY:
        if params.pop(name, None) is not None:
            raise ValueError(
                f"{name} is an HTTP option of the SDK; a batched request has no such call"
            )
    return params, timeout if isinstance(timeout, int | float) else None


class Messages:
    def __init__(self, producer: Producer | None, timeout: float) -> None:
        self._producer = producer
        self._timeout = timeout

    @property
    def producer(self) -> Producer:
        return self._producer or default_producer()

    def create(self, **params: Any) -> Message:
        """Enqueue the request and wait for its result (`timeout=` overrides the client's)."""
        body, timeout = _params(params)
        handle = self.producer.enqueue(body)
        return to_message(handle.result(timeout=timeout or self._timeout))


class AsyncMessages(Messages):
    async def create(self, **params: Any) -> Message:  # type: ignore[override]
        body, timeout = _params(params)
        handle = await asyncio.to_thread(self.producer.enqueue, body)
        return to_message(await handle.wait(timeout=timeout or self._timeout))


class Anthropic:
    """`anthropic.Anthropic`'s `messages.create`, run through Message Batches."""

    def __init__(
        self, *, producer: Producer | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        self.messages = Messages(producer, timeout)


class AsyncAnthropic:
    """`anthropic.AsyncAnthropic`'s `messages.create`, run through Message Batches."""

    def __init__(
        self, *, producer: Producer | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        self.messages = AsyncMessages(producer, timeout)
