"""The start-up check names each Redis setting that could lose queued requests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from batchline.adapters.redis_health import redis_problems

pytestmark = pytest.mark.integration


@pytest.fixture
def restore_config(redis_client: redis.Redis) -> Iterator[redis.Redis]:
    saved = {k: redis_client.config_get(k)[k] for k in ("maxmemory-policy", "appendonly")}
    yield redis_client
    for key, value in saved.items():
        redis_client.config_set(key, str(value))


def test_redis_health__flags_eviction_and_no_aof(restore_config: redis.Redis) -> None:
    restore_config.config_set("maxmemory-policy", "allkeys-lru")
    restore_config.config_set("appendonly", "no")
    problems = redis_problems(restore_config)
    assert len(problems) == 2
    assert "allkeys-lru" in problems[0] and "appendonly yes" in problems[1]


def test_redis_health__quiet_when_configured(restore_config: redis.Redis) -> None:
    restore_config.config_set("maxmemory-policy", "noeviction")
    restore_config.config_set("appendonly", "yes")
    assert redis_problems(restore_config) == []
