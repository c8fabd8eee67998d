"""Naming an exception's failure kind, for the retry policy (batchline.domain.retry).

The API adapter names its own failures as it raises them (`ApiFailure.kind`);
this names the rest that reach the task edge: the database and Redis failing.
"""

from __future__ import annotations

import redis
from sqlalchemy.exc import OperationalError

from batchline.adapters.batch_api import ApiFailure
from batchline.domain.retry import Failure


def failure_of(exc: BaseException) -> Failure | None:
    """The failure kind this exception reports; None for one no rule covers (a bug)."""
    if isinstance(exc, ApiFailure):
        return exc.kind
    if isinstance(exc, OperationalError):
        return Failure.DATABASE_UNAVAILABLE
    # redis' ConnectionError is not the builtin one: Redis restarting is passing too,
    # and a bare socket error is Redis' (the database's come as OperationalError).
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | ConnectionError):
        return Failure.REDIS_UNAVAILABLE
    return None
