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
    CreateError,
    CreateNotAccepted,
    CreateOutcomeUnknown,
    CreateRefused,
    RemoteBatch,
    RemoteBatchGone,
)
from batchline.domain.retry import Action, Failure, decide
from batchline.domain.timing import parse_http_date

# A results stream silent this long is cut (and retried): well under the
# ingestion lease, so a stalled download cannot outlive its lease.
RESULTS_READ_TIMEOUT_SECONDS = 60.0
DEFAULT_BASE_URL = "https://api.anthropic.com"
# The API refuses the key itself.
_KEY_REFUSED = {401, 403}
# A timeout or a conflict: the server may have done the work before answering.
_MAYBE_DONE = {408, 409}


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
        with _classified():
            return to_remote(self._client.messages.batches.retrieve(remote_id))

    def list_recent(self, created_after: datetime) -> Iterator[RemoteBatch]:
        with _classified():
            for batch in self._client.messages.batches.list(limit=100):
                if batch.created_at <= created_after:
                    return
                yield to_remote(batch)

    def server_time(self) -> datetime | None:
        # The smallest answer that carries the API's Date header.
        with _classified():
            raw = self._client.messages.batches.with_raw_response.list(limit=1)
        return parse_http_date(raw.headers.get("date"))

    def cancel(self, remote_id: str) -> RemoteBatch:
        with _classified():
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
            _classified(),
            client.messages.batches.with_streaming_response.results(remote_id) as response,
        ):
            yield response.iter_bytes()


def _classify_create_error(exc: anthropic.APIStatusError) -> CreateError:
    message = f"create answered HTTP {exc.status_code} {_error_type(exc)}: {_error_message(exc)}"
    kind = create_failure(exc.status_code, _error_type(exc))
    if kind in (Failure.CREATE_RATE_LIMITED, Failure.CREATE_OVERLOADED):
        return CreateNotAccepted(message, retry_after=_retry_after(exc), kind=kind)
    if kind in (Failure.CREATE_SERVER_ERROR, Failure.CREATE_NO_ANSWER):
        return CreateOutcomeUnknown(message, kind)
    return CreateRefused(message, kind=kind)


def create_failure(status: int, error_type: str) -> Failure:
    """What a create's HTTP error says happened."""
    if status == 429:
        return Failure.CREATE_RATE_LIMITED
    if status == 529:
        return Failure.CREATE_OVERLOADED
    if status in _KEY_REFUSED:
        return Failure.CREATE_KEY_REFUSED
    if status == 402 or "spend_limit" in error_type:
        return Failure.CREATE_BILLING_REFUSED
    if 400 <= status < 500 and status not in _MAYBE_DONE:
        return Failure.CREATE_INVALID
    # 5xx, 408, 409: the server may have created the batch before failing.
    return Failure.CREATE_SERVER_ERROR


def call_failure(status: int) -> Failure:
    """What a retrieve, list, cancel or results call's HTTP error says happened."""
    if status == 404:
        return Failure.BATCH_GONE
    if status in _MAYBE_DONE or status == 429 or status >= 500:
        return Failure.CALL_UNAVAILABLE
    return Failure.CALL_REFUSED


@contextmanager
def _classified() -> Iterator[None]:
    """The SDK's and the transport's errors as `ApiFailure`s of their kind."""
    try:
        yield
    except (
        anthropic.APIConnectionError,
        anthropic.APIResponseValidationError,
        json.JSONDecodeError,
        # A results stream cut midway surfaces from the transport, not the SDK.
        httpx2.TransportError,
    ) as exc:
        raise ApiUnavailable(f"{type(exc).__name__}") from None
    except anthropic.APIStatusError as exc:
        kind = call_failure(exc.status_code)
        if decide(kind).action is Action.ESCALATE:
            # As the SDK raised it: its type and status say most to a person (and
            # to the key check in services.pauses).
            raise
        text = f"HTTP {exc.status_code} {_error_type(exc)}"
        if kind is Failure.BATCH_GONE:
            raise RemoteBatchGone(f"{text}: {_error_message(exc)}") from None
        raise ApiUnavailable(text, kind) from None


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
