"""The synchronous Messages API port, for the deadline fallback.

One call, made exactly once per try: the SDK's own retries are off, because the
fallback has its own retry decision (batchline.domain.retry.sync_retry_delay)
that knows the deadline, and a retry the SDK made unseen would be paid unseen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anthropic
import orjson

from batchline.adapters.anthropic_api import DEFAULT_BASE_URL, _error_message, _error_type


class SyncCallFailed(Exception):
    """The call produced no message. `status` is None when no answer came at all."""

    def __init__(self, message: str, status: int | None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class SyncReply:
    """The API's `Message` exactly as it was sent, as JSON bytes."""

    message: bytes


class SyncMessages(Protocol):
    def create(self, params: bytes, betas: Sequence[str] = ()) -> SyncReply:
        """POST /v1/messages once with this exact request body (JSON)."""
        ...


class AnthropicSyncMessages:
    def __init__(self, api_key: str | None, base_url: str | None, timeout: float) -> None:
        self._client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url or DEFAULT_BASE_URL, max_retries=0, timeout=timeout
        )

    def close(self) -> None:
        self._client.close()

    def create(self, params: bytes, betas: Sequence[str] = ()) -> SyncReply:
        body: dict[str, Any] = orjson.loads(params)
        body.pop("stream", None)
        try:
            if betas:
                raw: Any = self._client.beta.messages.with_raw_response.create(
                    **body, betas=list(betas)
                )
            else:
                raw = self._client.messages.with_raw_response.create(**body)
            return SyncReply(raw.http_response.content)
        except anthropic.APIStatusError as exc:
            raise SyncCallFailed(
                f"HTTP {exc.status_code} {_error_type(exc)}: {_error_message(exc)}",
                exc.status_code,
                _retry_after(exc),
            ) from None
        except (anthropic.APIConnectionError, anthropic.APIResponseValidationError) as exc:
            raise SyncCallFailed(type(exc).__name__, None) from None


def _retry_after(exc: anthropic.APIStatusError) -> float | None:
    headers = exc.response.headers
    raw_ms = headers.get("retry-after-ms")
    raw = headers.get("retry-after")
    try:
        if raw_ms is not None:
            return float(raw_ms) / 1000
        return float(raw) if raw is not None else None
    except ValueError:
        return None
