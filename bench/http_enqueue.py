"""HTTP intake: POST /v1/requests to `batchline serve` beside `enqueue` in-process, same bodies.

Both are timed one call at a time (a producer waiting for each answer), so the
ratio is what the HTTP hop, JSON parsing and the server's thread hand-off cost
per request; p99 is over every call of the run.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from batchline.http_api.auth import token_digest
from batchline.local import free_port
from batchline.producer import Producer
from batchline.settings import Settings
from bench.data import request_bodies
from bench.environment import fresh_redis
from bench.report import Emit, Figure

TOKEN = "bench-token-" + "x" * 20


def _serve(database_url: str, redis_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHLINE_")}
    env.update(
        BATCHLINE_DATABASE_URL=database_url,
        BATCHLINE_REDIS_URL=redis_url,
        BATCHLINE_STREAM_KEY_PREFIX="bench",
        BATCHLINE_HTTP_TOKENS=token_digest(TOKEN),
        BATCHLINE_HTTP_BIND=f"127.0.0.1:{port}",
    )
    serve = [str(Path(sys.executable).parent / "batchline"), "serve"]
    with log.open("ab") as out:
        return subprocess.Popen(
            serve, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait_up(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("batchline serve exited before answering")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"batchline serve did not answer within {timeout}s")


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _time_http(port: int, bodies: list[bytes]) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    samples = []
    try:
        for body in bodies:
            started = time.perf_counter()
            conn.request("POST", "/v1/requests", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            samples.append(time.perf_counter() - started)
            if response.status != 202:
                raise RuntimeError(f"POST /v1/requests answered {response.status}")
    finally:
        conn.close()
    return samples


def _time_enqueue(producer: Producer, bodies: list[dict[str, Any]]) -> list[float]:
    samples = []
    for body in bodies:
        started = time.perf_counter()
        producer.enqueue(body)
        samples.append(time.perf_counter() - started)
    return samples


def run(database_url: str, redis_url: str, count: int, work: Path, emit: Emit) -> None:
    client = fresh_redis(redis_url)
    bodies = request_bodies(count)
    encoded = [orjson.dumps(b) for b in bodies]
    port = free_port()
    proc = _serve(database_url, redis_url, port, work / "serve.log")
    producer = Producer(
        Settings(database_url=database_url, redis_url=redis_url, stream_key_prefix="bench"), client
    )
    try:
        _wait_up(port, proc)
        _time_http(port, encoded[: min(50, count)])  # warm both paths first
        _time_enqueue(producer, bodies[: min(50, count)])
        http_s = _time_http(port, encoded)
        ours_s = _time_enqueue(producer, bodies)
    finally:
        producer.close()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    http_rate, our_rate = count / sum(http_s), count / sum(ours_s)
    note = f"{count} calls one at a time, one keep-alive connection"
    emit(Figure("HTTP enqueue one at a time", http_rate, "req/s", note=note))
    emit(Figure("  enqueue one at a time (same run)", our_rate, "req/s"))
    emit(Figure("  HTTP / enqueue throughput", http_rate / our_rate, "ratio"))
    emit(Figure("  HTTP enqueue p99", _p99(http_s) * 1000, "ms"))
    emit(Figure("  enqueue p99 (same run)", _p99(ours_s) * 1000, "ms"))
    emit(Figure("  HTTP / enqueue p99", _p99(http_s) / _p99(ours_s), "ratio"))
