"""Redis faults as reusable fixtures: full, forgetful, hanging.

    private_redis           a private redis-server as batchline wants it (noeviction, AOF on),
                            for a test that changes its configuration
    limited_redis           a private redis-server at --maxmemory 20mb, noeviction, AOF on
    forgetful_redis         the same without persistence: a restart forgets everything
    fill_until_refused(url) enqueue (no backpressure) until Redis itself refuses a write
    forget(server)          SIGKILL + start again: without persistence, an empty Redis
    frozen(server)          SIGSTOP for the block: connections open, nothing answers

Every server is a child of the test and killed after it; only loopback.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from batchline.errors import QueueFull
from batchline.producer import Producer
from batchline.settings import Settings
from harness.redis_server import PrivateRedis

MAXMEMORY = "20mb"
BODY = "x" * 4000


def params(n: int = 0) -> dict[str, object]:
    return {
        "model": "claude-3-5-sonnet-20241022",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": f"{n} {BODY}"}],
    }


class LimitedRedis(PrivateRedis):
    """A PrivateRedis at --maxmemory with noeviction; `persistent=False` turns AOF off."""

    def __init__(self, data_dir: Path, persistent: bool = True) -> None:
        super().__init__(data_dir)
        self.persistent = persistent

    def start(self, timeout: float = 30.0) -> LimitedRedis:
        super().start(timeout)
        client = redis.Redis.from_url(self.url, socket_timeout=5)
        try:
            client.config_set("maxmemory", MAXMEMORY)
            client.config_set("maxmemory-policy", "noeviction")
            if not self.persistent:
                client.config_set("appendonly", "no")
        finally:
            client.close()
        return self

    def start_empty(self) -> LimitedRedis:
        """Start again without reading the old AOF: as a Redis without persistence does."""
        for old in self.data_dir.glob("appendonly*"):
            if old.is_dir():
                for part in old.iterdir():
                    part.unlink()
                old.rmdir()
            else:
                old.unlink()
        return self.start()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own: CONFIG SET on the shared one would reach
    every test running beside it in other workers."""
    server = PrivateRedis(tmp_path / "redis-private").start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def limited_redis(tmp_path: Path) -> Iterator[LimitedRedis]:
    server = LimitedRedis(tmp_path / "redis-limited").start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def forgetful_redis(tmp_path: Path) -> Iterator[LimitedRedis]:
    server = LimitedRedis(tmp_path / "redis-forgetful", persistent=False).start()
    try:
        yield server
    finally:
        server.kill()


def forget(server: LimitedRedis) -> None:
    """A crash and restart of a Redis without persistence: everything in it is gone."""
    server.kill()
    server.start_empty()


def unlimited_settings(settings: Settings) -> Settings:
    """The same settings without batchline's backpressure: only Redis itself refuses."""
    return settings.replace(max_queue_bytes=1 << 40, redis_memory_high_water=1.0)


def fill_until_refused(settings: Settings, limit: int = 20_000) -> int:
    """Enqueue without backpressure until Redis refuses (at most `limit`); returns how many."""
    with Producer(unlimited_settings(settings)) as producer:
        for n in range(limit):
            try:
                producer.enqueue(params(n))
            except QueueFull:
                return n
    raise AssertionError(f"Redis accepted {limit} requests without refusing")


@contextlib.contextmanager
def frozen(server: PrivateRedis) -> Iterator[None]:
    """Redis stops answering (SIGSTOP) for the block: a hung peer, not a dead one."""
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
