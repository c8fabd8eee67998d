"""Start-up checks of the Redis that holds the intake stream.

An accepted enqueue lives only in Redis until intake moves it to SQL, so a
Redis that may evict keys or forgets everything on restart can lose it.
"""

from __future__ import annotations

from typing import Any

import redis


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
            "set `appendonly yes`"
        )
    return problems
