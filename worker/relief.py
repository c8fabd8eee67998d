"""Relief for a Redis at its memory limit: move the intake stream into SQL directly.

Under `noeviction` a full Redis refuses Celery's writes: the worker cannot
start (kombu takes a mutex with SET), the beat cannot send a tick, so the
intake task that would free the memory never runs. Backpressure keeps
batchline's own stream from getting there, but Redis may fill anyway (a
producer without the limit, other data). So the worker, before its consumer
starts, and the beat, when it finds Redis full, run intake themselves:
reading, acknowledging and deleting entries are writes Redis still allows.
"""

from __future__ import annotations

import logging

import redis

from batchline import runtime
from batchline.adapters.redis_health import make_client, read_memory
from batchline.keys import RedisKeys
from batchline.services.intake import run_intake
from batchline.settings import Settings

log = logging.getLogger("batchline.relief")


def redis_full(config: Settings, client: redis.Redis) -> bool:
    reading = read_memory(client, RedisKeys(config.stream_key_prefix).intake_stream)
    return reading.full(config.redis_memory_high_water)


def drain_if_full(config: Settings) -> int:
    """Move the intake stream into SQL when Redis is above its high water; returns how many."""
    client = make_client(config)
    try:
        if not redis_full(config, client):
            return 0
    except redis.RedisError as exc:
        log.warning("could not read Redis memory: %s", exc)
        return 0
    finally:
        client.close()
    log.warning("Redis is at its memory high water: moving the intake stream into SQL now")
    try:
        pipeline = runtime.build_pipeline(config)
    except Exception as exc:  # relief is best effort; the regular intake retries
        log.warning("could not relieve Redis: %s: %s", type(exc).__name__, exc)
        return 0
    try:
        moved = run_intake(pipeline, runtime.consumer_name())
    except Exception as exc:
        log.warning("could not relieve Redis: %s: %s", type(exc).__name__, exc)
        return 0
    finally:
        pipeline.engine.dispose()
    log.warning("moved %d requests from Redis into SQL", moved)
    return moved
