"""The Redis that holds the intake stream: clients, start-up checks, memory, errors.

An accepted enqueue lives only in Redis until intake moves it to SQL, so a
Redis that may evict keys or forgets everything on restart can lose it; and a
Redis at `maxmemory` under `noeviction` refuses every write, Celery's too, so
batchline stops short of that (see batchline.backpressure).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from batchline.errors import BrokerTimeout, BrokerUnavailable, QueueFull
from batchline.settings import Settings


def make_client(settings: Settings) -> redis.Redis:
    """A Redis client whose every call ends within the configured timeouts."""
    return redis.Redis.from_url(settings.redis_url, **client_timeouts(settings))


def redis_answers(url: str) -> bool:
    """Whether a Redis at this URL answers PING within a second (one still loading
    its append-only file answers LOADING: not yet)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def client_timeouts(settings: Settings) -> dict[str, Any]:
    return {
        "socket_timeout": settings.redis_socket_timeout_seconds,
        "socket_connect_timeout": settings.redis_connect_timeout_seconds,
        # One retry for a connection Redis dropped (a restart); never for a timeout,
        # which would multiply the time a caller waits on a Redis that hangs.
        "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
    }


def is_out_of_memory(exc: BaseException) -> bool:
    # Refused outright (OutOfMemoryError) or inside a script (a ResponseError naming it).
    return isinstance(exc, redis.OutOfMemoryError) or (
        isinstance(exc, redis.ResponseError) and "maxmemory" in str(exc)
    )


@contextmanager
def broker_errors(doing: str) -> Iterator[None]:
    """Turn redis-py's exceptions into batchline's documented ones."""
    try:
        yield
    except redis.TimeoutError as exc:
        raise BrokerTimeout(f"Redis did not answer in time while {doing}: {exc}") from exc
    except redis.ConnectionError as exc:
        raise BrokerUnavailable(f"Redis is unreachable while {doing}: {exc}") from exc
    except redis.RedisError as exc:
        if is_out_of_memory(exc):
            raise QueueFull(
                f"Redis is at its maxmemory and refused {doing}; nothing was written: "
                "retry later (the workers free memory as they move requests to SQL)"
            ) from exc
        raise BrokerUnavailable(f"Redis refused {doing}: {exc}") from exc


@dataclass(frozen=True)
class MemoryReading:
    used: int
    maxmemory: int  # 0: no limit
    queue_bytes: int

    def full(self, high_water: float, incoming: int = 0) -> bool:
        return self.maxmemory > 0 and self.used + incoming > self.maxmemory * high_water


def read_memory(client: redis.Redis, stream_key: str) -> MemoryReading:
    pipe = client.pipeline(transaction=False)
    pipe.info("memory")
    pipe.memory_usage(stream_key)
    info, usage = pipe.execute(raise_on_error=False)
    if isinstance(info, Exception):
        raise info
    # MEMORY USAGE may be disabled (managed Redis): then only maxmemory guards.
    queue = usage if isinstance(usage, int) else 0
    return MemoryReading(int(info["used_memory"]), int(info.get("maxmemory", 0)), queue)


def has_persistence(client: redis.Redis) -> bool | None:
    """Whether this Redis keeps data across a restart (AOF or RDB saves); None: cannot tell."""
    try:
        config: Any = client.config_get("appendonly")
        save: Any = client.config_get("save")
    except redis.ResponseError:
        return None  # CONFIG is disabled on many managed services
    return config.get("appendonly") == "yes" or bool(save.get("save", "").strip())


def redis_problems(client: redis.Redis) -> list[str]:
    """What is wrong with this Redis for batchline, each with its fix; [] when fine."""
    problems = []
    config: Any = client.config_get("maxmemory-policy")
    policy = config.get("maxmemory-policy")
    if policy != "noeviction":
        problems.append(
            f"Redis maxmemory-policy is {policy!r}: queued requests may be evicted; "
            "set `maxmemory-policy noeviction`"
        )
    aof: Any = client.config_get("appendonly")
    if aof.get("appendonly") != "yes":
        problems.append(
            "Redis append-only file is off: a Redis restart loses requests not yet in SQL; "
            "set `appendonly yes` (or BATCHLINE_DURABLE_ENQUEUE=true)"
        )
    return problems
