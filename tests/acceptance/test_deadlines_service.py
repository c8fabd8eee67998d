"""Deadlines through the running service: real `celery worker` and `celery beat`
subprocesses, PostgreSQL, and the emulator holding batches for 10 minutes.

The shape of issue 15's promise, at its own figures: a request with a 30-second
deadline in a batch the emulator holds for 10 minutes is answered through the
synchronous Messages API before its deadline, exactly once; the batch goes on,
and its later result is stored as a counted duplicate with both costs in the
ledger. The test ends the hold by advancing the emulator's clock (emulated
time), not by waiting 10 minutes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from batchline import ledger
from batchline.database import make_engine, make_session_factory
from batchline.emulator import EmulatorServer, FaultConfig
from batchline.models import Batch, Fallback, Request, Result
from batchline.producer import Item, Producer
from batchline.settings import Settings
from harness.processes import ServiceProcesses, service_env, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.integration]

HOLD_SECONDS = 600.0
DEADLINE_SECONDS = 30
SYNC_LATENCY = "20"  # the fallback is due 10 s after enqueue


def params(text: str) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32,
        "messages": [{"role": "user", "content": text}],
    }


Service = tuple[ServiceProcesses, EmulatorServer, str]


def start(
    emulator_factory: Callable[..., EmulatorServer],
    pg_db: str,
    redis_url: str,
    tmp_path: Path,
    faults: FaultConfig | None = None,
) -> Service:
    emulator = emulator_factory(processing_seconds=HOLD_SECONDS, faults=faults)
    env = service_env(
        pg_db,
        redis_url,
        emulator.base_url,
        BATCHLINE_SYNC_LATENCY_SECONDS=SYNC_LATENCY,
        BATCHLINE_DEADLINE_SCAN_SECONDS="1",
    )
    procs = ServiceProcesses(env, tmp_path)
    procs.worker()
    procs.beat()
    # A deadline runs from enqueue: enqueue only once the service is up.
    wait_for(lambda: " ready." in procs.log("worker"), 120, "the worker to start")
    wait_for(lambda: "beat took the lock" in procs.log("beat"), 120, "beat to start")
    return procs, emulator, pg_db


@pytest.fixture
def service(
    pg_db: str, redis_url: str, emulator_factory: Callable[..., EmulatorServer], tmp_path: Path
) -> Iterator[Service]:
    procs, emulator, db = start(emulator_factory, pg_db, redis_url, tmp_path)
    try:
        yield procs, emulator, db
    finally:
        procs.stop_all()


def results_of(db: str, request_id: str) -> list[Result]:
    engine = make_engine(db)
    try:
        with make_session_factory(engine)() as session:
            rows = session.scalars(
                select(Result).where(Result.request_id == request_id).order_by(Result.id)
            ).all()
            session.expunge_all()
            return list(rows)
    finally:
        engine.dispose()


def one(db: str, model: type[Any], *where: Any) -> Any:
    engine = make_engine(db)
    try:
        with make_session_factory(engine)() as session:
            row = session.scalars(select(model).where(*where)).one()
            session.expunge_all()
            return row
    finally:
        engine.dispose()


def enqueue_together(redis_url: str, db: str, items: list[Item]) -> list[str]:
    # One enqueue_many: one stream entry, so both go into one batch.
    with Producer(Settings(database_url=db, redis_url=redis_url)) as producer:
        return [h.id for h in producer.enqueue_many(items)]


def wait_result(procs: ServiceProcesses, redis_url: str, db: str, request_id: str) -> str:
    with Producer(Settings(database_url=db, redis_url=redis_url)) as producer:
        try:
            return str(producer.handle(request_id).result(timeout=DEADLINE_SECONDS + 30).type)
        except TimeoutError:
            pytest.fail("no result in time; worker log:\n" + procs.log("worker")[-6000:])


def test_deadline__answered_synchronously_in_time_and_the_batch_result_is_a_counted_duplicate(
    service: Service, redis_url: str
) -> None:
    procs, emulator, db = service
    urgent, other = enqueue_together(
        redis_url,
        db,
        [Item(params("urgent"), deadline=DEADLINE_SECONDS), Item(params("whenever"))],
    )

    assert wait_result(procs, redis_url, db, urgent) == "succeeded"
    request = one(db, Request, Request.id == urgent)
    [sync] = results_of(db, urgent)
    assert (sync.via, sync.duplicate, sync.batch_id) == ("sync", False, None)
    assert request.state == "succeeded" and sync.created_at < request.deadline_at
    # The batch holding both is still held: it goes on for the other request.
    batch = one(db, Batch, Batch.remote_id.is_not(None))
    assert batch.state == "submitted" and not batch.cancel_requested

    emulator.admin().advance_clock(HOLD_SECONDS)
    wait_for(lambda: len(results_of(db, urgent)) == 2, 90, "the batch result for the urgent one")
    sync_again, late = results_of(db, urgent)
    assert (late.via, late.duplicate, late.batch_id) == ("batch", True, batch.id)
    assert sync_again.duplicate is False  # settled once, by the sync answer
    assert wait_result(procs, redis_url, db, other) == "succeeded"
    assert [r.via for r in results_of(db, other)] == ["batch"]
    assert one(db, Request, Request.id == urgent).state == "succeeded"

    engine = make_engine(db)
    with make_session_factory(engine)() as session:
        spent = ledger.spend(session)
    engine.dispose()
    batch_cost = sum(r.cost_usd or Decimal(0) for r in [late, *results_of(db, other)])
    assert sync.cost_usd is not None and late.cost_usd is not None and late.cost_usd > 0
    assert spent.fallback_usd == sync.cost_usd
    assert spent.batch_usd == batch_cost
    # Full price for the same reply: twice what the batch charged for it.
    assert sync.cost_usd == 2 * late.cost_usd
    # Exactly one synchronous call reached the API.
    assert len(emulator.admin().records().messages) == 1


def test_deadline__fallback_answered_429_then_500_is_retried_within_its_deadline(
    pg_db: str, redis_url: str, emulator_factory: Callable[..., EmulatorServer], tmp_path: Path
) -> None:
    faults = FaultConfig(scripted_errors={"messages": [429, 500]}, retry_after_seconds=1.0)
    procs, _emulator, db = start(emulator_factory, pg_db, redis_url, tmp_path, faults)
    try:
        [urgent] = enqueue_together(
            redis_url, db, [Item(params("retry"), deadline=DEADLINE_SECONDS)]
        )
        assert wait_result(procs, redis_url, db, urgent) == "succeeded"
        fallback = one(db, Fallback, Fallback.request_id == urgent)
        request = one(db, Request, Request.id == urgent)
        [sync] = results_of(db, urgent)
    finally:
        procs.stop_all()
    assert (fallback.state, fallback.tries) == ("done", 3)
    assert sync.via == "sync" and sync.created_at < request.deadline_at


def test_deadline__batch_whose_every_request_fell_back_is_cancelled(
    service: Service, redis_url: str
) -> None:
    procs, emulator, db = service
    ids = enqueue_together(
        redis_url,
        db,
        [Item(params(f"urgent {n}"), deadline=DEADLINE_SECONDS) for n in range(2)],
    )
    for request_id in ids:
        assert wait_result(procs, redis_url, db, request_id) == "succeeded"
    batch = one(db, Batch, Batch.remote_id.is_not(None))

    def canceled() -> bool:
        records = emulator.admin().records()
        [remote] = [b for b in records.batches if b.id == batch.remote_id]
        return remote.cancel_initiated_at is not None

    wait_for(canceled, 60, "the all-fallen-back batch to be cancelled")
    assert one(db, Batch, Batch.id == batch.id).cancel_requested
    for request_id in ids:
        assert [r.via for r in results_of(db, request_id) if not r.duplicate] == ["sync"]
