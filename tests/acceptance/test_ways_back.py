"""Results back to the application, through real worker and beat processes:
a blocking result(), an awaited wait(), and a callback task in a second Celery
app that receives every id exactly once, even when ingestion runs twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import select, update

from batchline.database import make_engine
from batchline.emulator import EmulatorServer
from batchline.models import Batch
from batchline.producer import Item, Producer
from batchline.settings import Settings
from harness.callback_app import RECEIVED
from harness.processes import CELERY, ServiceProcesses, service_env, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.integration]

PARAMS = {
    "model": "claude-3-5-sonnet-20241022",
    "max_tokens": 20,
    "messages": [{"role": "user", "content": "hello"}],
}


@pytest.fixture
def service(
    pg_db: str, redis_url: str, emulator_factory: Callable[..., EmulatorServer], tmp_path: Path
) -> Iterator[ServiceProcesses]:
    emulator = emulator_factory(processing_seconds=1.0)
    procs = ServiceProcesses(
        service_env(pg_db, redis_url, emulator.base_url, CALLBACK_BROKER_URL=redis_url), tmp_path
    )
    procs.worker()
    procs.beat()
    procs.start(
        "callbacks",
        [
            CELERY[0],
            "-A",
            "harness.callback_app:app",
            "worker",
            "-Q",
            "batchline-callbacks",
            "--concurrency=1",
            "-n",
            "cb@%h",
            "--without-mingle",
            "--without-gossip",
        ],
    )
    try:
        yield procs
    finally:
        procs.stop_all()


def test_ways_back__result_wait_and_exactly_one_callback_each(
    service: ServiceProcesses, pg_db: str, redis_url: str, redis_client: redis.Redis
) -> None:
    settings = Settings(database_url=pg_db, redis_url=redis_url)
    with Producer(settings) as producer:
        blocking = producer.enqueue(PARAMS, on_result="myapp.tasks.handle_result")
        awaited = producer.enqueue(PARAMS, on_result="myapp.tasks.handle_result")
        others = producer.enqueue_many(
            [Item(PARAMS, on_result="myapp.tasks.handle_result") for _ in range(3)]
        )
        assert blocking.result(timeout=60).type == "succeeded"
        assert asyncio.run(awaited.wait(timeout=60)).type == "succeeded"
        for handle in others:
            assert handle.result(timeout=60).type == "succeeded"
    ids = {blocking.id, awaited.id, *(h.id for h in others)}

    def received() -> list[str]:
        items: list[bytes] = redis_client.lrange(RECEIVED, 0, -1)  # type: ignore[assignment]
        return [x.decode() for x in items]

    wait_for(lambda: set(received()) == ids, 30, "every callback")
    # Ingest everything again, as a redelivered task would; wait for the sweep to do it.
    engine = make_engine(pg_db)
    with engine.begin() as conn:
        conn.execute(update(Batch).values(state="ended", lease_until=None))
    wait_for(lambda: _all_ingested(engine), 30, "the re-ingestion")
    engine.dispose()

    time.sleep(3)  # two more sweeps, in which a wrong dispatcher would resend
    assert sorted(received()) == sorted(ids)


def _all_ingested(engine: object) -> bool:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return set(conn.scalars(select(Batch.state))) == {"ingested"}
