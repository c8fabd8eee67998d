"""The Batch API port over the official `anthropic` SDK.

Create goes out with the SDK's retries off: the endpoint has no idempotency
key, so a retried create after a lost response makes a second, billed batch.
Everything else keeps the SDK's retries, being safe to repeat.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import anthropic
import httpx2
from anthropic.types.messages import MessageBatch

from batchline.adapters.batch_api import (
    ApiUnavailable,
    CreateNotAccepted,
    CreateOutcomeUnknown,
    CreateRefused,
    RemoteBatch,
    RemoteBatchGone,
)
from batchline.domain.timing import parse_http_date

# A results stream silent this long is cut (and retried): well under the
# ingestion lease, so a stalled download cannot outlive its lease.
RESULTS_READ_TIMEOUT_SECONDS = 60.0
DEFAULT_BASE_URL = "https://api.anthropic.com"
# Statuses that prove the API created nothing and will accept a later try.
_NOT_ACCEPTED = {429, 529}
# Statuses that mean no create will work until a person acts: pause, do not fail requests.
_PAUSING = {401, 402, 403}


def to_remote(batch: MessageBatch) -> RemoteBatch:
    # The SDK builds a model from any JSON without validating it: an HTTP 200
    # whose body is not a batch must be a passing failure, not a crash each sweep.
    counts = getattr(batch, "request_counts", None)
    if (
        not isinstance(getattr(batch, "id", None), str)
        or not isinstance(getattr(batch, "processing_status", None), str)
        or not isinstance(getattr(batch, "created_at", None), datetime)
        or counts is None
        or not all(
            isinstance(getattr(counts, k, None), int)
            for k in ("processing", "succeeded", "errored", "canceled", "expired")
        )
    ):
        raise ApiUnavailable(f"the answer is not a message batch: {type(batch).__name__}")
    return RemoteBatch(
        id=batch.id,
        processing_status=batch.processing_status,
        processing=counts.processing,
        succeeded=counts.succeeded,
        errored=counts.errored,
        canceled=counts.canceled,
        expired=counts.expired,
        created_at=batch.created_at,
        expires_at=batch.expires_at,
        ended_at=batch.ended_at,
        cancel_initiated_at=batch.cancel_initiated_at,
        archived_at=batch.archived_at,
        results_url=batch.results_url,
    )


class AnthropicBatchApi:
    def __init__(
        self,
        api_key: str | None,
        base_url: str | None = None,
        create_timeout: float = 600.0,
        max_retries: int = 2,
    ) -> None:
        # Explicit, so an empty ANTHROPIC_BASE_URL in the environment is not read as "".
        self._client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url or DEFAULT_BASE_URL, max_retries=max_retries
        )
        self._create_timeout = create_timeout

    def close(self) -> None:
        self._client.close()

    def create(self, body: Iterable[bytes], betas: Sequence[str] = ()) -> RemoteBatch:
        client = self._client.with_options(max_retries=0, timeout=self._create_timeout)
        headers = {"content-type": "application/json"}
        if betas:
            # What the SDK's client.beta.messages.batches.create(betas=...) sends, with
            # the body still streamed from SQL rather than built whole in memory.
            headers["anthropic-beta"] = ",".join(betas)
        try:
            batch = client.post(
                "/v1/messages/batches",
                content=body,
                cast_to=MessageBatch,
                options={"headers": headers},
            )
        except anthropic.APIStatusError as exc:
            raise _classify_create_error(exc) from None
        except (
            anthropic.APIConnectionError,
            anthropic.APIResponseValidationError,
            json.JSONDecodeError,
        ) as exc:
            raise CreateOutcomeUnknown(f"create outcome unknown: {type(exc).__name__}") from None
        try:
            return to_remote(batch)
        except ApiUnavailable as exc:
            raise CreateOutcomeUnknown(f"create outcome unknown: {exc}") from None

    def retrieve(self, remote_id: str) -> RemoteBatch:
        with _unavailable_on_transient():
            return to_remote(self._client.messages.batches.retrieve(remote_id))

    def list_recent(self, created_after: datetime) -> Iterator[RemoteBatch]:
        with _unavailable_on_transient():
            for batch in self._client.messages.batches.list(limit=100):
                if batch.created_at <= created_after:
                    return
                yield to_remote(batch)

    def server_time(self) -> datetime | None:
        # The smallest answer that carries the API's Date header.
        with _unavailable_on_transient():
            raw = self._client.messages.batches.with_raw_response.list(limit=1)
        return parse_http_date(raw.headers.get("date"))

    def cancel(self, remote_id: str) -> RemoteBatch:
        with _unavailable_on_transient():
            return to_remote(self._client.messages.batches.cancel(remote_id))

    @contextmanager
    def results(self, remote_id: str) -> Iterator[Iterator[bytes]]:
        # Raw bytes as each read returns them (not the SDK's JSONL decoder, which
        # reads 64-byte chunks and mishandles a \r\n split across two of them),
        # and not gathered into large chunks either: the caller checks its
        # deadline and lease between reads, however slowly the bytes come.
        client = self._client.with_options(
            timeout=httpx2.Timeout(RESULTS_READ_TIMEOUT_SECONDS, connect=10.0)
        )
        with (
            _unavailable_on_transient(),
            client.messages.batches.with_streaming_response.results(remote_id) as response,
        ):
            yield response.iter_bytes()


def _classify_create_error(exc: anthropic.APIStatusError) -> Exception:
    status = exc.status_code
    message = f"create answered HTTP {status} {_error_type(exc)}: {_error_message(exc)}"
    if status in _NOT_ACCEPTED:
        return CreateNotAccepted(message, retry_after=_retry_after(exc), status=status)
    if status in _PAUSING or "spend_limit" in _error_type(exc):
        return CreateRefused(message, pause=True)
    if 400 <= status < 500 and status not in (408, 409):
        return CreateRefused(message)
    # 5xx, 408, 409: the server may have created the batch before failing.
    return CreateOutcomeUnknown(message)


@contextmanager
def _unavailable_on_transient() -> Iterator[None]:
    try:
        yield
    except anthropic.NotFoundError as exc:
        raise RemoteBatchGone(f"HTTP 404 {_error_type(exc)}: {_error_message(exc)}") from None
    except (
        anthropic.APIConnectionError,
        anthropic.APIResponseValidationError,
        json.JSONDecodeError,
        # A results stream cut midway surfaces from the transport, not the SDK.
        httpx2.TransportError,
    ) as exc:
        raise ApiUnavailable(f"{type(exc).__name__}") from None
    except anthropic.APIStatusError as exc:
        if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
            raise ApiUnavailable(f"HTTP {exc.status_code} {_error_type(exc)}") from None
        raise


def _error_body(exc: anthropic.APIStatusError) -> dict[str, Any]:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"]  # type: ignore[no-any-return]
    return {}


def _error_type(exc: anthropic.APIStatusError) -> str:
    return str(_error_body(exc).get("type", "unknown"))


def _error_message(exc: anthropic.APIStatusError) -> str:
    return str(_error_body(exc).get("message", ""))[:500]


def _retry_after(exc: anthropic.APIStatusError) -> float | None:
    raw = exc.response.headers.get("retry-after")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None
