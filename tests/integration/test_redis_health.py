"""The start-up check names each Redis setting that could lose queued requests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from batchline.adapters.redis_health import redis_problems
from harness.redis_faults import private_redis as private_redis
from harness.redis_server import PrivateRedis

pytestmark = pytest.mark.integration


@pytest.fixture
def own_redis(private_redis: PrivateRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(private_redis.url)
    yield client
    client.close()


def test_redis_health__flags_eviction_and_no_aof(own_redis: redis.Redis) -> None:
    own_redis.config_set("maxmemory-policy", "allkeys-lru")
    own_redis.config_set("appendonly", "no")
    problems = redis_problems(own_redis)
    assert len(problems) == 2
    assert "allkeys-lru" in problems[0] and "appendonly yes" in problems[1]


def test_redis_health__quiet_when_configured(own_redis: redis.Redis) -> None:
    own_redis.config_set("maxmemory-policy", "noeviction")
    own_redis.config_set("appendonly", "yes")
    assert redis_problems(own_redis) == []
