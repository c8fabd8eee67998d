"""Wake-ups for waiters: ids of requests that reached a final state.

Pub/sub is only a hint that saves polling; SQL stays the truth, and a waiter
that misses a message still finds the result on its next slow check.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from batchline.keys import RedisKeys


class RedisNotifier:
    def __init__(self, client: redis.Redis, keys: RedisKeys) -> None:
        self._redis = client
        self._keys = keys

    def settled(self, request_ids: Sequence[str]) -> None:
        if request_ids:
            self._redis.publish(self._keys.settled_channel, ",".join(request_ids))


class NullNotifier:
    def settled(self, request_ids: Sequence[str]) -> None:
        pass
