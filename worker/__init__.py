"""batchline: enqueue Messages API requests, get them run through Message Batches.

    from batchline import enqueue
    handle = enqueue({"model": ..., "max_tokens": ..., "messages": [...]})
    result = handle.result(timeout=3600)   # typed as the SDK types batch results

The names below load on first use, so importing a submodule (the models
import `batchline.domain`) does not pull in the whole producer stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# `X as X`: an explicit re-export, so type checkers see the public names.
if TYPE_CHECKING:
    from batchline.celery_app import (
        app as app,
    )
    from batchline.client import (
        Anthropic as Anthropic,
    )
    from batchline.client import (
        AsyncAnthropic as AsyncAnthropic,
    )
    from batchline.control import (
        cancel_batch as cancel_batch,
    )
    from batchline.control import (
        cancel_request as cancel_request,
    )
    from batchline.domain.validation import (
        InvalidRequest as InvalidRequest,
    )
    from batchline.errors import (
        BrokerTimeout as BrokerTimeout,
    )
    from batchline.errors import (
        BrokerUnavailable as BrokerUnavailable,
    )
    from batchline.errors import (
        QueueFull as QueueFull,
    )
    from batchline.errors import (
        RequestLost as RequestLost,
    )
    from batchline.handles import (
        RequestHandle as RequestHandle,
    )
    from batchline.ledger import (
        estimate as estimate,
    )
    from batchline.producer import (
        Item as Item,
    )
    from batchline.producer import (
        Producer as Producer,
    )
    from batchline.producer import (
        aenqueue as aenqueue,
    )
    from batchline.producer import (
        default_producer as default_producer,
    )
    from batchline.producer import (
        enqueue as enqueue,
    )
    from batchline.producer import (
        enqueue_many as enqueue_many,
    )

_EXPORTS = {
    # `celery -A batchline worker` finds the Celery app here (Celery looks for `app`).
    "app": "batchline.celery_app",
    "InvalidRequest": "batchline.domain.validation",
    "BrokerTimeout": "batchline.errors",
    "BrokerUnavailable": "batchline.errors",
    "QueueFull": "batchline.errors",
    "RequestLost": "batchline.errors",
    # Drop-in for the SDK's non-streaming messages.create, through batches.
    "Anthropic": "batchline.client",
    "AsyncAnthropic": "batchline.client",
    "RequestHandle": "batchline.handles",
    "cancel_batch": "batchline.control",
    "cancel_request": "batchline.control",
    "Item": "batchline.producer",
    "aenqueue": "batchline.producer",
    "estimate": "batchline.ledger",
    "Producer": "batchline.producer",
    "default_producer": "batchline.producer",
    "enqueue": "batchline.producer",
    "enqueue_many": "batchline.producer",
}

__all__ = sorted([*_EXPORTS, "__version__"])
__version__: str  # the installed distribution's version, read on first use


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("batchline")
    if name not in _EXPORTS:
        raise AttributeError(f"module 'batchline' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
