"""The in-flight limit through real worker and beat processes and the emulator's
queue limit: under the limit no create is answered 429; over it, a 429 lowers the
effective limit, `status` and the metrics show it, and it lifts again."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from sqlalchemy import func, select

from batchline.cli.status import status_document
from batchline.database import make_engine
from batchline.emulator import EmulatorServer
from batchline.metrics import registry_for
from batchline.models import Request
from batchline.producer import Item, Producer
from batchline.settings import Settings
from harness.processes import BIN, ServiceProcesses, service_env, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.integration]

PARAMS = {"model": "claude-test", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def _run(
    db_url: str, redis_url: str, emulator: EmulatorServer, tmp_path: Path, limit: int
) -> tuple[ServiceProcesses, Settings]:
    env = service_env(
        db_url,
        redis_url,
        emulator.base_url,
        BATCHLINE_MAX_IN_FLIGHT_REQUESTS=str(limit),
        BATCHLINE_MAX_BATCH_REQUESTS="4",
    )
    procs = ServiceProcesses(env, tmp_path)
    procs.worker(concurrency=2)
    procs.beat()
    settings = Settings(database_url=db_url, redis_url=redis_url, max_in_flight_requests=limit)
    with Producer(settings) as producer:
        producer.enqueue_many([Item(PARAMS) for _ in range(20)])
    return procs, settings


def _succeeded(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            query = select(func.count()).where(Request.state == "succeeded")
            return int(conn.scalar(query) or 0)
    finally:
        engine.dispose()


def _metric(settings: Settings, name: str) -> float:
    for line in generate_latest(registry_for(settings)).decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the metrics")


def _worker_log(procs: ServiceProcesses) -> str:
    return "".join(p.read_text(errors="replace") for p in procs.log_dir.glob("worker*.log"))


def test_capacity__under_the_limit_no_create_is_answered_429(
    db_url: str, redis_url: str, emulator_factory: Callable[..., EmulatorServer], tmp_path: Path
) -> None:
    emulator = emulator_factory(max_queued_requests=6, processing_seconds=2.0)
    procs, settings = _run(db_url, redis_url, emulator, tmp_path, limit=6)
    seen: list[dict[str, Any]] = []
    try:

        def done() -> bool:
            seen.append(status_document(settings))
            return _succeeded(db_url) == 20

        wait_for(done, 120, "twenty requests to succeed under the limit", step=0.3)
        in_use = _metric(settings, "batchline_capacity_in_flight")
    finally:
        procs.stop_all()
    assert "HTTP 429" not in _worker_log(procs), "a create went over the emulator's queue limit"
    capacity = [doc["capacity"] for doc in seen]
    assert max(c["in_flight"] for c in capacity) <= 6
    assert all(c["limit"] == 6 and c["lowered"] is None for c in capacity)
    # The limit, not luck, kept it under: requests waited queued while the limit
    # was taken (assembly cuts only what fits, so no batch need wait to be created;
    # a batch 4 requests wide ends at 6 = 4 + 2 taken, 14 waiting).
    held_back = [
        doc
        for doc in seen
        if doc["capacity"]["in_flight"] + doc["capacity"]["prepared"] == 6
        and doc["requests"].get("queued", 0) > 0
    ]
    assert held_back, "the limit was never reached while requests waited"
    assert in_use == 0


def test_capacity__a_429_lowers_the_limit_and_a_create_lifts_it(
    db_url: str, redis_url: str, emulator_factory: Callable[..., EmulatorServer], tmp_path: Path
) -> None:
    # The service believes in 12; the API takes 6: its 429s teach batchline the rest.
    emulator = emulator_factory(max_queued_requests=6, processing_seconds=2.0)
    procs, settings = _run(db_url, redis_url, emulator, tmp_path, limit=12)
    lowered_seen: list[tuple[Any, float]] = []
    try:

        def lowered() -> bool:
            capacity: Any = status_document(settings)["capacity"]
            if capacity["lowered"] is not None:
                lowered_seen.append((capacity, _metric(settings, "batchline_capacity_lowered")))
            return bool(lowered_seen)

        wait_for(lowered, 120, "a 429 to lower the effective limit", step=0.2)
        wait_for(lambda: _succeeded(db_url) == 20, 180, "every request to succeed", step=0.5)
        time.sleep(1)
        status = subprocess.run(
            [str(BIN / "batchline"), "status", "--json"],
            env=procs.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        lifted = _metric(settings, "batchline_capacity_lowered")
        limit = _metric(settings, "batchline_capacity_limit")
    finally:
        procs.stop_all()
    capacity, metric = lowered_seen[0]
    assert capacity["effective_limit"] < 12 and metric == 1
    final = json.loads(status.stdout)["capacity"]
    assert final["lowered"] is None and final["effective_limit"] == 12
    assert (lifted, limit) == (0, 12)
    assert "answered 429" in _worker_log(procs)
