"""Enqueueing: batchline's producer against raw redis-py XADD of the same payload.

Targets (issue 18): one at a time >= 0.9 x raw XADD, enqueue_many >= 1.0 x raw
pipelined XADD of one entry per request, and the p99 of single enqueues from 8
threads at once <= 2 x the p99 of raw XADDs from 8 threads.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import redis

from batchline.adapters.intake_entries import IntakeEntry, encode_fields
from batchline.domain.custom_ids import new_request_id
from batchline.keys import RedisKeys
from batchline.producer import Producer
from batchline.settings import Settings
from bench.data import request_bodies
from bench.environment import WHOLE_RUN_QUEUE_BYTES, fresh_redis
from bench.report import Emit, Figure, at_least, at_most
from bench.timing import interleaved

PIPELINE_CHUNK = 1_000


def _raw_fields(bodies: list[dict[str, Any]]) -> list[Any]:
    """What an enqueue writes, encoded ahead of time: the floor does no work of ours."""
    import orjson

    return [
        encode_fields(IntakeEntry(new_request_id(), orjson.dumps(b), {"model": b["model"]}))
        for b in bodies
    ]


def one_at_a_time(
    redis_url: str, count: int, emit: Emit, targets: bool = True, rounds: int = 5
) -> None:
    client = fresh_redis(redis_url)
    keys = RedisKeys("bench")
    producer = Producer(Settings(redis_url=redis_url, stream_key_prefix="bench"), client)
    per_round = max(count // rounds, 1)
    bodies = request_bodies(per_round)
    fields = _raw_fields(bodies)
    stream = keys.intake_stream

    def raw() -> None:
        for f in fields:
            client.xadd(stream, f)

    def ours() -> None:
        for body in bodies:
            producer.enqueue(body)

    raw()  # warm both paths (connection, script cache) before timing
    ours()
    client.delete(stream)
    raw_s, ours_s = interleaved(raw, ours, rounds)
    client.delete(stream)
    raw_rate, our_rate = per_round / raw_s, per_round / ours_s
    emit(Figure("enqueue one at a time", our_rate, "req/s"))
    emit(Figure("  raw XADD round trip (baseline)", raw_rate, "req/s"))
    emit(
        Figure(
            "  enqueue / raw XADD",
            our_rate / raw_rate,
            "ratio",
            at_least(0.9) if targets else None,
            f"median of {rounds} interleaved rounds of {per_round}",
        )
    )
    producer.close()


def many(redis_url: str, count: int, emit: Emit, targets: bool = True) -> None:
    client = fresh_redis(redis_url)
    settings = Settings(
        redis_url=redis_url, stream_key_prefix="bench", max_queue_bytes=WHOLE_RUN_QUEUE_BYTES
    )
    producer = Producer(settings, client)
    stream = RedisKeys("bench").intake_stream
    bodies = request_bodies(count)
    fields = _raw_fields(bodies)

    def raw() -> None:
        for start in range(0, len(fields), PIPELINE_CHUNK):
            pipe = client.pipeline(transaction=False)
            for f in fields[start : start + PIPELINE_CHUNK]:
                pipe.xadd(stream, f)
            pipe.execute()
        client.delete(stream)

    def ours() -> None:
        producer.enqueue_many(bodies, chunk=PIPELINE_CHUNK)
        client.delete(stream)

    # Two rounds each: 100,000 requests are 150 MB in Redis, so the round is
    # the unit, and deleting the stream after each keeps memory bounded.
    raw_s, ours_s = interleaved(raw, ours, 2)
    raw_rate, our_rate = count / raw_s, count / ours_s
    emit(
        Figure(f"enqueue_many {count:,}", our_rate, "req/s", at_least(80_000) if targets else None)
    )
    emit(Figure("  raw pipelined XADD (baseline)", raw_rate, "req/s"))
    emit(
        Figure(
            "  enqueue_many / raw XADD",
            our_rate / raw_rate,
            "ratio",
            at_least(1.0) if targets else None,
            "median of 2 interleaved rounds",
        )
    )
    producer.close()


THREADS = 8


def _p99_from_threads(calls: list[Callable[[], object]]) -> float:
    """p99 latency (s) of `calls`, made by THREADS threads at once, each its share in turn."""
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def work(share: list[Callable[[], object]]) -> None:
        mine: list[float] = []
        start.wait()
        for call in share:
            began = time.perf_counter()
            call()
            mine.append(time.perf_counter() - began)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=work, args=(calls[n::THREADS],)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statistics.quantiles(latencies, n=100)[98]


def from_threads(
    redis_url: str, count: int, emit: Emit, targets: bool = True, rounds: int = 3
) -> None:
    """Single enqueues from 8 threads sharing one producer (as a web app's request
    threads would), against raw XADDs from 8 threads sharing one client."""
    client = fresh_redis(redis_url)
    producer = Producer(Settings(redis_url=redis_url, stream_key_prefix="bench"), client)
    stream = RedisKeys("bench").intake_stream
    bodies = request_bodies(max(count, THREADS * 50))
    fields = _raw_fields(bodies)
    raw_calls: list[Callable[[], object]] = [partial(client.xadd, stream, f) for f in fields]
    our_calls: list[Callable[[], object]] = [partial(producer.enqueue, b) for b in bodies]
    raw_p99: list[float] = []
    our_p99: list[float] = []
    for _ in range(rounds):
        raw_p99.append(_p99_from_threads(raw_calls))
        client.delete(stream)
        our_p99.append(_p99_from_threads(our_calls))
        client.delete(stream)
    raw_s, ours_s = statistics.median(raw_p99), statistics.median(our_p99)
    emit(Figure(f"enqueue from {THREADS} threads: p99", ours_s * 1000, "ms"))
    emit(Figure(f"  raw XADD from {THREADS} threads: p99 (baseline)", raw_s * 1000, "ms"))
    emit(
        Figure(
            "  enqueue p99 / raw XADD p99",
            ours_s / raw_s,
            "ratio",
            at_most(2.0) if targets else None,
            f"median of {rounds} interleaved rounds of {len(bodies)} calls",
        )
    )
    producer.close()


def run(redis_url: str, one_count: int, many_count: int, emit: Emit, targets: bool) -> None:
    one_at_a_time(redis_url, one_count, emit, targets)
    from_threads(redis_url, one_count, emit, targets)
    many(redis_url, many_count, emit, targets)
    redis.Redis.from_url(redis_url).flushdb()
