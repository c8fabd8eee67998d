"""The SDK's batch tests against the emulator: its placeholder ids mapped to real batches.

The SDK's own suite runs against a mock server that answers any id; here the
placeholder `message_batch_id` in a request's path becomes a real batch in the
state the call needs (cancel: a batch still in progress; delete: an ended one;
retrieve and results: an ended one), made on the emulator as the call is sent.
No respx: `MockRouter` is a stand-in whose routes do nothing, so the results
tests read the emulator's real results.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2

from batchline.emulator import EmulatorServer

PLACEHOLDER = "message_batch_id"
_ONE_REQUEST: Any = [
    {
        "custom_id": "sdk-suite-1",
        "params": {
            "model": "claude-sonnet-4-5",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "Hello, world"}],
        },
    }
]


class _Route:
    def mock(self, *args: Any, **kwargs: Any) -> _Route:
        return self


class MockRouter:
    """respx's router, reduced to a no-op: the emulator answers instead."""

    def get(self, *args: Any, **kwargs: Any) -> _Route:
        return _Route()


class Batches:
    """Real batches for the placeholder, made through a plain SDK client."""

    def __init__(self, emulator: EmulatorServer) -> None:
        self._emulator = emulator
        self._client = anthropic.Anthropic(base_url=emulator.base_url, api_key="sdk-suite")
        self._ended: str | None = None

    def in_progress(self) -> str:
        return self._client.messages.batches.create(requests=_ONE_REQUEST).id

    def ended(self, *, fresh: bool = False) -> str:
        if self._ended is None or fresh:
            batch_id = self.in_progress()
            # Ends this batch (and any before it): emulated time only.
            self._emulator.clock.advance(self._emulator.processing_seconds + 1)
            if fresh:
                return batch_id
            self._ended = batch_id
        return self._ended

    def for_request(self, request: httpx2.Request) -> str:
        if request.method == "DELETE":
            return self.ended(fresh=True)
        if request.url.path.endswith("/cancel"):
            return self.in_progress()
        return self.ended()

    def close(self) -> None:
        self._client.close()


def _mapped(request: httpx2.Request, batches: Batches) -> httpx2.Request:
    if f"/{PLACEHOLDER}" not in request.url.path:
        return request
    path = request.url.path.replace(f"/{PLACEHOLDER}", f"/{batches.for_request(request)}")
    request.url = request.url.copy_with(path=path)
    return request


class PlaceholderTransport(httpx2.HTTPTransport):
    def __init__(self, batches: Batches) -> None:
        super().__init__()
        self._batches = batches

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return super().handle_request(_mapped(request, self._batches))


class AsyncPlaceholderTransport(httpx2.AsyncHTTPTransport):
    def __init__(self, batches: Batches) -> None:
        super().__init__()
        self._batches = batches

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await super().handle_async_request(_mapped(request, self._batches))
