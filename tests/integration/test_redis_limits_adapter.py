"""The intake adapter and producer at Redis's limits, on a private 20 MB Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from batchline.adapters.intake import RedisIntakeStream
from batchline.adapters.intake_entries import IntakeEntry
from batchline.keys import RedisKeys
from batchline.producer import Item, Producer
from batchline.settings import Settings
from harness.redis_faults import LimitedRedis, fill_until_refused, limited_redis, params

__all__ = ["limited_redis"]  # a fixture, used by name

pytestmark = pytest.mark.integration


def _entry(n: int) -> IntakeEntry:
    return IntakeEntry(f"{n:032x}", b'{"model":"m","max_tokens":1,"messages":[]}' + b" " * 3000, {})


def test_add_all__refused_midway_writes_nothing(
    limited_redis: LimitedRedis, sqlite_db: str
) -> None:
    # Given a Redis with about 4 MB left before maxmemory
    fill_until_refused(Settings(database_url=sqlite_db, redis_url=limited_redis.url))
    client = redis.Redis.from_url(limited_redis.url)
    try:
        client.xtrim("batchline:intake", maxlen=client.xlen("batchline:intake") - 1_000)
        stream = RedisIntakeStream(client, RedisKeys())
        before = client.xlen("batchline:intake"), client.hgetall("batchline:intake:ledger")
        # When a lot of about 9 MB is added past any producer-side check, keyed and not
        parts = [
            [(_entry(n), f"k{n}" if n % 3 == 0 else None) for n in range(p, p + 100)]
            for p in range(0, 3_000, 100)
        ]
        with pytest.raises(redis.RedisError, match="maxmemory"):
            stream.add_all(parts, key_ttl=60)
        # Then none of it is in Redis: no entry, no key, no count.
        after = client.xlen("batchline:intake"), client.hgetall("batchline:intake:ledger")
        assert after == before
        assert client.get("batchline:key:k0") is None
    finally:
        client.close()


def test_ensure_group__twice_and_at_maxmemory(limited_redis: LimitedRedis, sqlite_db: str) -> None:
    fill_until_refused(Settings(database_url=sqlite_db, redis_url=limited_redis.url))
    client = redis.Redis.from_url(limited_redis.url)
    try:
        # XGROUP CREATE is refused at maxmemory; intake must read to free memory.
        RedisIntakeStream(client, RedisKeys()).ensure_group()
        RedisIntakeStream(client, RedisKeys()).ensure_group()
        assert client.xinfo_groups("batchline:intake")[0]["name"] == b"intake"
    finally:
        client.close()


def test_enqueue_many__handles_in_order_with_keys_and_ledger_counts(
    redis_url: str, redis_client: redis.Redis, sqlite_db: str
) -> None:
    settings = Settings(database_url=sqlite_db, redis_url=redis_url)
    with Producer(settings) as producer:
        first = producer.enqueue(params(), key="k1")
        items = [Item(params(n), key="k1" if n == 2 else None) for n in range(250)]
        handles = producer.enqueue_many(items)
    assert handles[2] == first
    assert len({h.id for h in handles}) == 250
    assert [h.id for h in handles[3:]] == [h.id for h in handles[3:]]
    # The keyed duplicate was not accepted again: 1 + 249 requests, and the depth agrees.
    assert redis_client.hget("batchline:intake:ledger", "accepted") == b"250"
    assert [(i, h.status()) for i, h in enumerate(handles) if h.status() != "pending"] == []


def test_producer__warns_once_without_persistence(
    limited_redis: LimitedRedis, sqlite_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis.from_url(limited_redis.url)
    client.config_set("appendonly", "no")
    client.close()
    with Producer(Settings(database_url=sqlite_db, redis_url=limited_redis.url)) as producer:
        for n in range(3):
            producer.enqueue(params(n))
    warnings = [r for r in caplog.records if "no persistence" in r.getMessage()]
    assert len(warnings) == 1


def test_durable_enqueue__commits_to_sql_without_redis(tmp_path: Path, sqlite_db: str) -> None:
    # Redis is not even running: durable enqueue needs only SQL.
    settings = Settings(
        database_url=sqlite_db, redis_url="redis://127.0.0.1:1/0", durable_enqueue=True
    )
    with Producer(settings) as producer:
        one = producer.enqueue(params(), key="d1")
        again = producer.enqueue(params(), key="d1")
        many = producer.enqueue_many([params(n) for n in range(10)])
        assert again == one
        assert {h.status() for h in [one, *many]} == {"queued"}
