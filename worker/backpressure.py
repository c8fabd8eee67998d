"""Backpressure: enqueue refuses (QueueFull) before Redis is full.

Under `noeviction` a Redis at maxmemory refuses every write: Celery's task
messages, the beat's ticks, the worker's own start-up. So the producer stops
well short of it: at BATCHLINE_MAX_QUEUE_BYTES in the intake stream, or at
BATCHLINE_REDIS_MEMORY_HIGH_WATER of maxmemory, whichever comes first. The
room left lets the workers run and drain the backlog, after which enqueue
works again by itself.

Redis is read at most once a second (or after 1% of the limit was written by
this producer), so each producer may overshoot by that much between readings:
the high-water margin is what absorbs it.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from batchline.adapters.redis_health import MemoryReading, has_persistence, read_memory
from batchline.errors import QueueFull
from batchline.keys import RedisKeys
from batchline.settings import Settings

log = logging.getLogger("batchline.producer")

RECHECK_SECONDS = 1.0


class Backpressure:
    def __init__(self, client: redis.Redis, keys: RedisKeys, settings: Settings) -> None:
        self._redis = client
        self._stream = keys.intake_stream
        self._settings = settings
        self._lock = threading.Lock()
        self._reading: MemoryReading | None = None
        self._read_at = 0.0
        self._written = 0
        self._checked_persistence = False

    def admit(self, incoming: int) -> None:
        """Count `incoming` bytes about to be written; raises QueueFull if they do not fit."""
        with self._lock:
            reading = self._current()
            queue = reading.queue_bytes + self._written + incoming
            limit = self._settings.max_queue_bytes
            if queue > limit:
                raise QueueFull(
                    f"intake queue is full ({queue:,} bytes with this request, "
                    f"BATCHLINE_MAX_QUEUE_BYTES={limit:,}): the workers are behind or "
                    "stopped; retry later"
                )
            high_water = self._settings.redis_memory_high_water
            if reading.full(high_water, self._written + incoming):
                raise QueueFull(
                    f"Redis memory is near its maxmemory ({reading.used:,} of "
                    f"{reading.maxmemory:,} bytes, high water {high_water:.0%}): "
                    "the workers are behind or stopped; retry later"
                )
            self._written += incoming

    def _current(self) -> MemoryReading:
        stale = time.monotonic() - self._read_at > RECHECK_SECONDS
        if self._reading is None or stale or self._written > self._recheck_bytes():
            self._reading = read_memory(self._redis, self._stream)
            self._read_at = time.monotonic()
            self._written = 0
            self._warn_without_persistence()
        return self._reading

    def _recheck_bytes(self) -> int:
        limit = self._settings.max_queue_bytes
        if self._reading is not None and self._reading.maxmemory:
            limit = min(limit, self._reading.maxmemory)
        return max(64 * 1024, limit // 100)

    def _warn_without_persistence(self) -> None:
        if self._checked_persistence:
            return
        self._checked_persistence = True
        if has_persistence(self._redis) is False and not self._settings.durable_enqueue:
            log.warning(
                "Redis has no persistence (no AOF, no RDB saves): a Redis restart loses "
                "every request not yet in SQL, and their handles report `lost`; set "
                "`appendonly yes`, or BATCHLINE_DURABLE_ENQUEUE=true"
            )
