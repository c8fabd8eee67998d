"""A beat scheduler that only sends while it holds a Redis lock.

Exactly one beat should run; a second one started by mistake finds the lock
held and stays idle, taking over only if the first stops renewing it. (Even
without the lock a double tick would be harmless: every task is idempotent.)
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

import redis
from celery.beat import Scheduler

from batchline import runtime
from batchline.keys import RedisKeys

log = logging.getLogger("batchline.beat")

LOCK_TTL_MS = 30_000
IDLE_INTERVAL = 5.0

# Take the lock if free, or renew it if ours; one round trip, so two beats
# can never both believe they hold it.
_ACQUIRE_OR_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


class LockedScheduler(Scheduler):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        config = runtime.settings()
        self._redis = redis.Redis.from_url(config.redis_url)
        self._key = RedisKeys(config.stream_key_prefix).beat_lock
        self._token = f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._script = self._redis.register_script(_ACQUIRE_OR_RENEW)
        self._holding: bool | None = None
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self._hold_lock():
            return IDLE_INTERVAL
        return float(super().tick(*args, **kwargs))

    def _hold_lock(self) -> bool:
        try:
            held = bool(self._script(keys=[self._key], args=[self._token, LOCK_TTL_MS]))
        except redis.RedisError as exc:
            log.warning("beat lock unavailable (%s); not sending this tick", exc)
            held = False
        if held != self._holding:
            if held:
                log.warning("beat took the lock: this beat sends the schedule")
            else:
                log.warning("another beat holds the lock: this beat stays idle")
            self._holding = held
        return held

    def close(self) -> None:
        if self._holding:
            self._redis.eval(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end",
                1,
                self._key,
                self._token,
            )
        super().close()
