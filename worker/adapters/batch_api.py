"""The Message Batches API port: six calls, and the failures they raise.

`AnthropicBatchApi` drives the real SDK; `batchline.adapters.memory_api` has an
in-memory implementation of the same port for unit tests of the services.
Each failure carries its `domain.retry.Failure` kind: the adapter says what
happened, the retry policy what to do about it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from batchline.domain.retry import Failure


@dataclass(frozen=True)
class RemoteBatch:
    id: str
    processing_status: str
    processing: int
    succeeded: int
    errored: int
    canceled: int
    expired: int
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None
    cancel_initiated_at: datetime | None = None
    archived_at: datetime | None = None
    results_url: str | None = None

    @property
    def request_count(self) -> int:
        return self.processing + self.succeeded + self.errored + self.canceled + self.expired

    @property
    def ended(self) -> bool:
        return self.processing_status == "ended"


class ApiFailure(Exception):
    """A call to the API that failed; `kind` names how, for the retry policy."""

    kind: Failure = Failure.CALL_UNAVAILABLE

    def __init__(
        self, message: str, kind: Failure | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind
        # Seconds the API asked us to wait before the next try, if it said.
        self.retry_after = retry_after


class CreateError(ApiFailure):
    """A create that did not (knowingly) produce a batch. Subclasses say what is known."""

    kind = Failure.CREATE_NO_ANSWER


class CreateNotAccepted(CreateError):
    """The API answered and created nothing, for a reason that passes (429, 529)."""

    kind = Failure.CREATE_RATE_LIMITED

    def __init__(
        self, message: str, retry_after: float | None = None, kind: Failure | None = None
    ) -> None:
        super().__init__(message, kind, retry_after)


class CreateRefused(CreateError):
    """The API answered and will not accept this create: a 4xx (`pause`: the
    account or key, which a person must fix, rather than the body)."""

    kind = Failure.CREATE_INVALID

    def __init__(self, message: str, pause: bool = False, kind: Failure | None = None) -> None:
        super().__init__(message, kind or (Failure.CREATE_BILLING_REFUSED if pause else None))


class CreateOutcomeUnknown(CreateError):
    """No usable answer: the batch may or may not exist. The reconciler decides."""


class RemoteBatchGone(ApiFailure):
    """The remote batch, or its results, no longer exist (deleted, or archived after 29 days)."""

    kind = Failure.BATCH_GONE


class ApiUnavailable(ApiFailure):
    """A retrieve/list/cancel/results call failed for a reason that passes."""


class BatchApi(Protocol):
    def create(self, body: Iterable[bytes], betas: Sequence[str] = ()) -> RemoteBatch:
        """POST the JSON body (streamed), exactly once: never retried here. With
        `betas`, through the beta endpoint with those names in anthropic-beta."""
        ...

    def retrieve(self, remote_id: str) -> RemoteBatch: ...

    def list_recent(self, created_after: datetime) -> Iterator[RemoteBatch]:
        """Remote batches created after the given time (the API's clock), newest first."""
        ...

    def server_time(self) -> datetime | None:
        """The API's clock now (its `Date` header); None when it sent none readable."""
        ...

    def cancel(self, remote_id: str) -> RemoteBatch: ...

    def results(self, remote_id: str) -> AbstractContextManager[Iterator[bytes]]:
        """The results JSONL as raw byte chunks, streamed."""
        ...
