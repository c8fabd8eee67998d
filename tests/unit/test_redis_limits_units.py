"""Pure parts of the Redis-limits work: settings, error mapping, memory readings, epochs."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from batchline import BrokerTimeout, BrokerUnavailable, QueueFull
from batchline.adapters.redis_health import MemoryReading, broker_errors
from batchline.losses import _advance
from batchline.settings import Settings, SettingsError


def test_settings__durable_enqueue_reads_true_and_false() -> None:
    assert Settings.from_env({"BATCHLINE_DURABLE_ENQUEUE": "true"}).durable_enqueue is True
    assert Settings.from_env({"BATCHLINE_DURABLE_ENQUEUE": "0"}).durable_enqueue is False
    with pytest.raises(SettingsError, match="BATCHLINE_DURABLE_ENQUEUE must be true or false"):
        Settings.from_env({"BATCHLINE_DURABLE_ENQUEUE": "maybe"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BATCHLINE_REDIS_MEMORY_HIGH_WATER", "0"),
        ("BATCHLINE_REDIS_MEMORY_HIGH_WATER", "1.5"),
        ("BATCHLINE_MAX_QUEUE_BYTES", "0"),
        ("BATCHLINE_REDIS_SOCKET_TIMEOUT_SECONDS", "0"),
    ],
)
def test_settings__redis_limits_are_checked(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (redis.TimeoutError("Timeout reading from socket"), BrokerTimeout),
        (redis.ConnectionError("Connection refused"), BrokerUnavailable),
        (redis.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), QueueFull),
        (redis.ResponseError("OOM command not allowed when used memory > 'maxmemory'"), QueueFull),
        (redis.ResponseError("WRONGTYPE"), BrokerUnavailable),
    ],
)
def test_broker_errors__only_documented_types_escape(
    raised: Exception, expected: type[Exception]
) -> None:
    with pytest.raises(expected) as caught, broker_errors("enqueueing"):
        raise raised
    assert not type(caught.value).__module__.startswith("redis")


def test_broker_timeout__is_a_timeout_error_and_a_connection_error() -> None:
    assert issubclass(BrokerTimeout, TimeoutError)
    assert issubclass(BrokerTimeout, ConnectionError)


def test_memory_reading__full_at_the_high_water_only_with_a_maxmemory() -> None:
    reading = MemoryReading(used=70, maxmemory=100, queue_bytes=0)
    assert not reading.full(0.8)
    assert reading.full(0.8, incoming=11)
    assert not MemoryReading(used=10**12, maxmemory=0, queue_bytes=0).full(0.8)


def test_advance__a_new_epoch_closes_the_old_one_with_its_last_count() -> None:
    record: dict[str, Any] = {}
    _advance(record, {"epoch": "a", "since": "1000", "accepted": "5"}, now_ms=2000)
    _advance(record, {"epoch": "a", "since": "1000", "accepted": "9"}, now_ms=3000)
    assert record["current"]["accepted"] == 9 and "closed" not in record
    # Flushed: no ledger at all; then a producer starts a new epoch.
    _advance(record, {}, now_ms=4000)
    _advance(record, {"epoch": "b", "since": "4500", "accepted": "1"}, now_ms=5000)
    assert [(c["epoch"], c["accepted"], c["seen"]) for c in record["closed"]] == [("a", 9, 3000)]
    assert record["current"]["epoch"] == "b"
