"""Redis at its limits, through the running service: full, forgetful, hanging.

Given a private redis-server at --maxmemory 20mb with noeviction (what `doctor`
asks for), real worker and beat processes, PostgreSQL and the emulator: a full
Redis refuses enqueue with QueueFull and still drains by itself; a Redis that
forgets (restart without persistence) makes its losses visible on the handles
and in status, metrics and doctor; a Redis that hangs surfaces as TimeoutError.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from sqlalchemy import func, select

from batchline import BrokerTimeout, QueueFull, RequestLost
from batchline.cli import cli
from batchline.database import make_engine
from batchline.emulator import EmulatorServer
from batchline.losses import lost_count
from batchline.metrics import registry_for
from batchline.models import Request
from batchline.producer import Item, Producer
from batchline.settings import Settings
from harness.processes import ServiceProcesses, service_env, wait_for
from harness.redis_faults import (
    LimitedRedis,
    fill_until_refused,
    forget,
    forgetful_redis,
    frozen,
    limited_redis,
    params,
)

__all__ = ["forgetful_redis", "limited_redis"]  # fixtures, used by name

pytestmark = [pytest.mark.fault, pytest.mark.integration, pytest.mark.acceptance]


@pytest.fixture
def start_service(
    pg_db: str, emulator_factory: Callable[..., EmulatorServer], tmp_path: Path
) -> Iterator[Callable[[str], ServiceProcesses]]:
    started: list[ServiceProcesses] = []
    emulator = emulator_factory(processing_seconds=0.5)

    def start(redis_url: str, beat_only: bool = False) -> ServiceProcesses:
        procs = ServiceProcesses(service_env(pg_db, redis_url, emulator.base_url), tmp_path)
        started.append(procs)
        if not beat_only:
            procs.worker()
        procs.beat()
        return procs

    try:
        yield start
    finally:
        for procs in started:
            procs.stop_all()


def _in_sql(db: str) -> int:
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(Request)) or 0)
    finally:
        engine.dispose()


def _used(url: str) -> tuple[int, int]:
    client = redis.Redis.from_url(url)
    try:
        info = client.info("memory")
        return int(info["used_memory"]), int(info["maxmemory"])
    finally:
        client.close()


def test_full_redis__queue_full_first_then_the_service_drains_by_itself(
    limited_redis: LimitedRedis, pg_db: str, start_service: Callable[..., ServiceProcesses]
) -> None:
    settings = Settings(database_url=pg_db, redis_url=limited_redis.url)
    # Given producers enqueue while no worker runs: batchline refuses before Redis does.
    accepted = 0
    with Producer(settings) as producer, pytest.raises(QueueFull, match="maxmemory"):
        for n in range(20_000):
            producer.enqueue(params(n))
            accepted += 1
    used, maxmemory = _used(limited_redis.url)
    assert accepted > 1000 and used < maxmemory
    # And a producer without that limit fills Redis until Redis itself refuses writes.
    accepted += fill_until_refused(settings)
    # When the worker and beat start on that full Redis
    procs = start_service(limited_redis.url)
    # Then they start anyway, and move every accepted request into SQL.
    wait_for(lambda: _in_sql(pg_db) == accepted, 120, f"{accepted} requests in SQL")
    assert "Unrecoverable error" not in procs.log("worker")
    # And enqueue works again once the backlog is gone.
    wait_for(lambda: _used(limited_redis.url)[0] < maxmemory // 2, 60, "Redis to drain")
    time.sleep(1.1)  # the producer reads Redis's memory at most once a second
    with Producer(settings) as producer:
        handle = producer.enqueue(params())
        assert handle.result(timeout=120).type == "succeeded"


def test_forgetful_redis__handles_say_lost_and_status_metrics_doctor_count_them(
    forgetful_redis: LimitedRedis, pg_db: str, start_service: Callable[..., ServiceProcesses]
) -> None:
    settings = Settings(database_url=pg_db, redis_url=forgetful_redis.url, clock_skew_seconds=1)
    # Given requests accepted while no worker runs (only the beat, which watches Redis)
    procs = start_service(forgetful_redis.url, beat_only=True)
    with Producer(settings) as producer:
        handles = [producer.enqueue(params(n), key=f"k{n}") for n in range(50)]
        handles += producer.enqueue_many([params(n) for n in range(150)])
        # (the beat saw them in Redis's ledger)
        wait_for(lambda: "took the lock" in procs.log("beat"), 30, "the beat")
        time.sleep(6)
        # When Redis restarts without persistence
        forget(forgetful_redis)
        # Then every handle reports the loss, by entry or by id alone
        assert {h.status() for h in handles} == {"lost"}
        with pytest.raises(RequestLost, match="enqueue it again"):
            handles[0].result(timeout=5)
        time.sleep(1.1)  # older than the clock-skew allowance
        assert producer.handle(handles[-1].id).status() == "lost"
    # And status, metrics and doctor count them
    wait_for(lambda: lost_count(settings) == 200, 30, "the loss to be counted")
    env = {"BATCHLINE_DATABASE_URL": pg_db, "BATCHLINE_REDIS_URL": forgetful_redis.url}
    status = CliRunner().invoke(cli, ["status"], env=env)
    assert "lost by Redis before SQL" in status.output and "200" in status.output
    doctor = CliRunner().invoke(cli, ["doctor"], env=env)
    assert "Redis lost 200 accepted requests" in doctor.output
    metric = registry_for(settings).get_sample_value("batchline_lost_requests")
    assert metric == 200
    # And a new request after the loss runs as usual, and is not counted lost
    procs.worker()
    with Producer(settings) as producer:
        assert producer.enqueue(params()).result(timeout=120).type == "succeeded"
    assert lost_count(settings) == 200


def test_durable_enqueue__survives_a_forgetful_redis(
    forgetful_redis: LimitedRedis, pg_db: str, start_service: Callable[..., ServiceProcesses]
) -> None:
    settings = Settings(database_url=pg_db, redis_url=forgetful_redis.url, durable_enqueue=True)
    # Given requests enqueued in durable mode, while no worker runs
    with Producer(settings) as producer:
        handles = [producer.enqueue(params(n)) for n in range(20)]
        handles += producer.enqueue_many([Item(params(n)) for n in range(30)])
        again = producer.enqueue(params(), key="once")
        assert producer.enqueue(params(), key="once") == again
        # When Redis restarts without persistence
        forget(forgetful_redis)
        # Then nothing was lost: they are queued in SQL, and the service runs them.
        assert {h.status() for h in handles} == {"queued"}
        start_service(forgetful_redis.url)
        for handle in [*handles, again]:
            assert handle.result(timeout=120).type == "succeeded"


def test_result__answers_from_sql_while_redis_is_down(
    limited_redis: LimitedRedis, pg_db: str, start_service: Callable[..., ServiceProcesses]
) -> None:
    settings = Settings(database_url=pg_db, redis_url=limited_redis.url)
    procs = start_service(limited_redis.url)
    with Producer(settings) as producer:
        done = producer.enqueue(params())
        waiting = producer.enqueue_many([params(n) for n in range(3)])
        assert done.result(timeout=120).type == "succeeded"
        procs.stop_all()
        # When Redis is down
        limited_redis.kill()
        # Then a final request still answers, from SQL, and status too
        assert done.result(timeout=5).type == "succeeded"
        assert done.status() == "succeeded"
        # And one not yet final waits its timeout and says so in the documented way.
        pending = [h for h in waiting if h.status() != "succeeded"]
        for handle in pending[:1]:
            with pytest.raises(TimeoutError):
                handle.result(timeout=2)


def test_hung_redis__timeout_error_within_the_configured_bound(
    limited_redis: LimitedRedis, pg_db: str
) -> None:
    settings = Settings(
        database_url=pg_db,
        redis_url=limited_redis.url,
        redis_socket_timeout_seconds=1,
        redis_connect_timeout_seconds=1,
    )
    with Producer(settings) as producer:
        handle = producer.enqueue(params())
        outcomes: list[BaseException | None] = []

        def attempts() -> None:
            for call in (
                lambda: producer.enqueue(params()),
                lambda: producer.enqueue_many([params(1), params(2)]),
                handle.status,
                lambda: handle.result(timeout=1),
            ):
                try:
                    call()
                    outcomes.append(None)
                except Exception as exc:
                    outcomes.append(exc)

        # Given a Redis that stops answering
        with frozen(limited_redis):
            # When the producer and a handle use it
            caller = threading.Thread(target=attempts, daemon=True)
            caller.start()
            caller.join(timeout=30)
            assert not caller.is_alive(), "a call to a hung Redis never returned"
        # Then each raises TimeoutError (no redis-py exception), within the bound.
        assert [type(o) for o in outcomes[:3]] == [BrokerTimeout] * 3
        assert isinstance(outcomes[3], TimeoutError)
        assert not any(type(o).__module__.startswith("redis") for o in outcomes)


def test_enqueue_many__all_or_nothing_when_redis_is_nearly_full(
    limited_redis: LimitedRedis, pg_db: str
) -> None:
    settings = Settings(database_url=pg_db, redis_url=limited_redis.url)
    client = redis.Redis.from_url(limited_redis.url)
    try:
        with Producer(settings) as producer:
            producer.enqueue_many([params(n) for n in range(1_500)])
            before = (
                client.xlen("batchline:intake"),
                client.hget("batchline:intake:ledger", "accepted"),
            )
            # When a batch larger than the room left is enqueued
            with pytest.raises(QueueFull):
                producer.enqueue_many([params(n) for n in range(8_000)])
            # Then none of it was written, and a smaller one still fits.
            after = (
                client.xlen("batchline:intake"),
                client.hget("batchline:intake:ledger", "accepted"),
            )
            assert after == before
            assert len(producer.enqueue_many([params(n) for n in range(100)])) == 100
    finally:
        client.close()
