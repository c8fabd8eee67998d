"""SQLAlchemy 2 declarative models: the system of record from intake on.

- `Request`: one enqueued Messages API request, its state and current batch.
- `RequestBody`: its body as enqueued, apart so a state move rewrites a narrow row.
- `Batch`: one batch intent and, once created, its remote Message Batch.
- `Result`: one result line of one remote batch (the attempt history).
- `Control`: service-wide switches (submission paused and why).
- `RequestStateCount`, `ResultTotal`, `Snapshot`: running totals kept by triggers,
  and snapshots of them over time (see `models.summaries`).
- `Fallback`: a request sent through the synchronous API for its deadline.
"""

from batchline.models.base import Base, metadata
from batchline.models.summaries import RequestStateCount, ResultTotal, Snapshot
from batchline.models.tables import (
    Batch,
    CachePrimer,
    Control,
    Fallback,
    Request,
    RequestBody,
    Result,
)

__all__ = [
    "Base",
    "Batch",
    "CachePrimer",
    "Control",
    "Fallback",
    "Request",
    "RequestBody",
    "RequestStateCount",
    "Result",
    "ResultTotal",
    "Snapshot",
    "metadata",
]
