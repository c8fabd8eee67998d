"""The Message Batches API port: six calls, and what a create's failure means.

`AnthropicBatchApi` drives the real SDK; `batchline.adapters.memory_api` has an
in-memory implementation of the same port for unit tests of the services.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


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


class CreateError(Exception):
    """A create that did not (knowingly) produce a batch. Subclasses say what is known."""


class CreateNotAccepted(CreateError):
    """The API answered and created nothing, for a reason that passes (429, 529)."""

    def __init__(
        self, message: str, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        # 429: over a limit (the queue limit lowers batchline's effective capacity).
        self.status = status


class CreateRefused(CreateError):
    """The API answered and will never accept this create (4xx). `pause` for billing."""

    def __init__(self, message: str, pause: bool = False) -> None:
        super().__init__(message)
        self.pause = pause


class CreateOutcomeUnknown(CreateError):
    """No usable answer: the batch may or may not exist. The reconciler decides."""


class RemoteBatchGone(Exception):
    """The remote batch, or its results, no longer exist (deleted, or archived after 29 days)."""


class ApiUnavailable(Exception):
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
