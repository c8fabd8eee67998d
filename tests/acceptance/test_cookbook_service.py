"""The seed notebook's two examples through the whole service.

Enqueued with `enqueue`, processed by real `celery worker` and `celery beat`
subprocesses against real Redis and PostgreSQL and the emulator; every
handle's `result()` returns the succeeded message, and SQL holds the batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from batchline import cookbook
from batchline.database import make_engine
from batchline.emulator import EmulatorServer
from batchline.models import Batch, Request
from batchline.producer import Producer
from batchline.settings import Settings
from harness.processes import ServiceProcesses, service_env

pytestmark = [pytest.mark.acceptance, pytest.mark.integration]


@pytest.fixture
def service(
    pg_db: str, redis_url: str, emulator_factory: object, tmp_path: Path
) -> Iterator[tuple[ServiceProcesses, EmulatorServer]]:
    emulator = emulator_factory(processing_seconds=1.0)  # type: ignore[operator]
    procs = ServiceProcesses(service_env(pg_db, redis_url, emulator.base_url), tmp_path)
    procs.worker()
    procs.beat()
    # A second beat started by mistake: it must stay idle.
    procs.beat("beat-2")
    try:
        yield procs, emulator
    finally:
        procs.stop_all()


def test_cookbook__both_examples_end_to_end_through_worker_and_beat(
    service: tuple[ServiceProcesses, EmulatorServer], pg_db: str, redis_url: str
) -> None:
    procs, emulator = service
    settings = Settings(database_url=pg_db, redis_url=redis_url)
    with Producer(settings) as producer:
        handles = {
            custom_id: producer.enqueue(params, key=custom_id)
            for example in (cookbook.example_1(), cookbook.example_2())
            for custom_id, params in example.items()
        }
        try:
            results = {cid: h.result(timeout=90) for cid, h in handles.items()}
        except TimeoutError:
            pytest.fail("no result in time; worker log:\n" + procs.log("worker")[-4000:])

    for custom_id, result in results.items():
        assert result.type == "succeeded", custom_id
        assert result.message.content, custom_id
    assert "image/png" in str(results["image-analysis"].message.content)  # type: ignore[union-attr]
    engine = make_engine(pg_db)
    with engine.connect() as conn:
        batches = conn.execute(
            select(Batch.state, Batch.processing_status, Batch.count_succeeded, Batch.remote_id)
        ).all()
        states = conn.execute(select(Request.idempotency_key, Request.state)).all()
    engine.dispose()
    assert {s for s, *_ in batches} == {"ingested"}
    assert {p for _, p, *_ in batches} == {"ended"}
    assert sum(n for _, _, n, _ in batches) == 8
    assert dict(states) == {cid: "succeeded" for cid in handles}
    beat_logs = [procs.log("beat"), procs.log("beat-2")]
    assert sum("beat took the lock" in log for log in beat_logs) == 1
    assert sum("this beat stays idle" in log for log in beat_logs) == 1
    records = emulator.admin().records()
    assert {r.id for r in records.batches} == {remote for *_, remote in batches}
