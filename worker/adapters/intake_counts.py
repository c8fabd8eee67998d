"""The intake stream's counts at a glance (status, metrics): None when Redis does not answer."""

from __future__ import annotations

from collections.abc import Callable

import redis

from batchline.adapters.intake import RedisIntakeStream
from batchline.adapters.redis_health import make_client
from batchline.keys import RedisKeys
from batchline.settings import Settings


def queue_depth(settings: Settings) -> int | None:
    """Requests waiting in the intake stream."""
    return _count(settings, RedisIntakeStream.depth)


def dead_letters(settings: Settings) -> int | None:
    """Intake entries (or single requests of bundles) dead-lettered, with a reason each."""
    return _count(settings, RedisIntakeStream.dead_letter_count)


def _count(settings: Settings, read: Callable[[RedisIntakeStream], int]) -> int | None:
    # A client for this one look: callers are commands and scrapes, seconds apart.
    client = make_client(settings)
    try:
        return read(RedisIntakeStream(client, RedisKeys(settings.stream_key_prefix)))
    except redis.RedisError:
        return None
    finally:
        client.close()
