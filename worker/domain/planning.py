"""Cutting queued requests into batches under the API's limits."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from batchline.domain.batch_body import EMPTY_BODY_BYTES
from batchline.domain.batch_body import ENVELOPE_BYTES_PER_REQUEST as ENVELOPE_BYTES_PER_REQUEST

API_MAX_REQUESTS = 100_000
API_MAX_BYTES = 256_000_000


@dataclass(frozen=True)
class Limits:
    max_requests: int = API_MAX_REQUESTS
    max_bytes: int = API_MAX_BYTES

    def __post_init__(self) -> None:
        if not 1 <= self.max_requests <= API_MAX_REQUESTS:
            raise ValueError(f"max_requests must be 1..{API_MAX_REQUESTS}")
        if not 1 <= self.max_bytes <= API_MAX_BYTES:
            raise ValueError(f"max_bytes must be 1..{API_MAX_BYTES}")


def should_cut(
    queued: int, queued_bytes: int, oldest_wait_seconds: float, limits: Limits, max_wait: float
) -> bool:
    """A batch is cut when it would be full, or the oldest request waited long enough."""
    if queued == 0:
        return False
    full = (
        queued >= limits.max_requests
        or queued_bytes + queued * ENVELOPE_BYTES_PER_REQUEST >= limits.max_bytes
    )
    return full or oldest_wait_seconds >= max_wait


def take_while_fits(sizes: Iterable[tuple[str, int]], limits: Limits) -> Iterator[str]:
    """Yield ids, in order, for as long as the batch stays within both limits.

    A request too large to share a batch with anything still goes alone.
    """
    total = EMPTY_BODY_BYTES
    for taken, (request_id, size) in enumerate(sizes):
        cost = size + ENVELOPE_BYTES_PER_REQUEST
        if taken >= limits.max_requests or (taken > 0 and total + cost > limits.max_bytes):
            return
        total += cost
        yield request_id
