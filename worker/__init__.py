"""batchline: enqueue Messages API requests, get them run through Message Batches.

    from worker import enqueue
    handle = enqueue({"model": ..., "max_tokens": ..., "messages": [...]})
    result = handle.result(timeout=3600)   # typed as the SDK types batch results

The names below load on first use, so importing a submodule (the models
import `worker.domain`) does not pull in the whole producer stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.control import cancel_batch, cancel_request  # noqa: F401
    from worker.domain.validation import InvalidRequest  # noqa: F401
    from worker.handles import RequestHandle  # noqa: F401
    from worker.ledger import estimate  # noqa: F401
    from worker.producer import (  # noqa: F401
        Item,
        Producer,
        aenqueue,
        default_producer,
        enqueue,
        enqueue_many,
    )

_EXPORTS = {
    "InvalidRequest": "worker.domain.validation",
    "RequestHandle": "worker.handles",
    "cancel_batch": "worker.control",
    "cancel_request": "worker.control",
    "Item": "worker.producer",
    "aenqueue": "worker.producer",
    "estimate": "worker.ledger",
    "Producer": "worker.producer",
    "default_producer": "worker.producer",
    "enqueue": "worker.producer",
    "enqueue_many": "worker.producer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'worker' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
