"""The daily spend cap through real worker and beat processes: thirty one-request
batches that would all end at once, four submitters at a time, and a cap that
holds because each batch's worst case is reserved before it is created."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from batchline import ledger
from batchline.database import make_engine
from batchline.emulator import EmulatorServer
from batchline.models import Batch, Result
from batchline.producer import Item, Producer
from batchline.settings import Settings
from harness.processes import BIN, ServiceProcesses, service_env, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.integration]

CAP = Decimal("0.01")
IN_FLIGHT = ("submitting", "unknown", "submitted", "ended")


def _params(n: int) -> dict[str, object]:
    # ~500 input tokens and up to 64 output: about $0.001 each at batch prices,
    # so thirty cost three times the cap, and one worst case (~$0.0036) fits in it.
    text = f"request {n}: " + "tell me about the tides and the moon. " * 52
    return {
        "model": "claude-3-5-sonnet-20241022",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
    }


@pytest.fixture
def service(
    db_url: str, redis_url: str, emulator_factory: Callable[..., EmulatorServer], tmp_path: Path
) -> Iterator[ServiceProcesses]:
    # Every batch takes 4 s to end: without a reservation, all thirty are created
    # before the first result is ingested, which is what overran the cap.
    emulator = emulator_factory(processing_seconds=4.0)
    env = service_env(
        db_url,
        redis_url,
        emulator.base_url,
        BATCHLINE_DAILY_SPEND_CAP_USD=str(CAP),
        BATCHLINE_MAX_BATCH_REQUESTS="1",
    )
    procs = ServiceProcesses(env, tmp_path)
    procs.worker(concurrency=4)
    procs.beat()
    try:
        yield procs
    finally:
        procs.stop_all()


def _in_flight(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).where(Batch.state.in_(IN_FLIGHT))) or 0)


def _settled(engine: Engine) -> bool:
    """Nothing in flight, some results in, and still nothing in flight a few ticks later."""
    with engine.connect() as conn:
        results = int(conn.scalar(select(func.count()).select_from(Result)) or 0)
    if results == 0 or _in_flight(engine):
        return False
    time.sleep(3)  # beat ticks every 0.5 s: a batch that fits would be submitted by now
    return _in_flight(engine) == 0


def test_spend_cap__thirty_batches_ending_at_once_stay_within_the_cap(
    service: ServiceProcesses, db_url: str, redis_url: str
) -> None:
    settings = Settings(database_url=db_url, redis_url=redis_url)
    params = [_params(n) for n in range(30)]
    with Producer(settings) as producer:
        producer.enqueue_many([Item(p) for p in params])
    worst = max(ledger.estimate([p]).worst_case_usd for p in params)

    engine = make_engine(db_url)
    try:
        wait_for(lambda: _settled(engine), 120, "the cap to stop submission", step=0.5)
        with engine.connect() as conn:
            spent = Decimal(str(conn.scalar(select(func.sum(Result.cost_usd))) or 0))
            done = int(conn.scalar(select(func.count()).select_from(Result)) or 0)
    finally:
        engine.dispose()
    # The bound allows one batch's worst case over the cap; reserving
    # before create keeps within the cap itself.
    assert 0 < spent <= CAP + worst, f"spent ${spent} under a ${CAP} cap ({done} results)"
    assert spent <= CAP
    assert done < 30  # the cap, not the queue running dry, is what stopped it
    print(f"spent ${spent} of a ${CAP} cap in {done} results; one worst case ${worst:.4f}")

    status = subprocess.run(
        [str(BIN / "batchline"), "status"],
        env=service.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "daily spend cap" in status.stdout, status.stdout + status.stderr
